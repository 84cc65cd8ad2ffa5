// presave's fan page: shows the release time in the fan's own time zone,
// sends that zone with the start, and keeps the provider buttons disabled
// until the consent box is ticked (and, per service, one of its actions).
// The page works without it: the server then uses the release's default
// zone and refuses a start without consent or without any action.
(function () {
  'use strict';

  function each(selector, fn) {
    Array.prototype.forEach.call(document.querySelectorAll(selector), fn);
  }

  var tz = '';
  try {
    tz = Intl.DateTimeFormat().resolvedOptions().timeZone || '';
  } catch (e) {
    tz = '';
  }

  var zoneField = document.getElementById('zone');
  if (zoneField && tz) {
    zoneField.value = tz;
  }

  var release = document.querySelector('[data-timing]');
  if (release && tz) {
    try {
      if (release.getAttribute('data-timing') === 'fixed' && release.getAttribute('data-release-at')) {
        var at = new Date(release.getAttribute('data-release-at'));
        var parts = {};
        new Intl.DateTimeFormat('en-GB', {
          weekday: 'long', day: 'numeric', month: 'long', year: 'numeric', timeZone: tz
        }).formatToParts(at).forEach(function (p) { parts[p.type] = p.value; });
        // The server's format: "Friday 13 November 2026".
        var day = parts.weekday + ' ' + parts.day + ' ' + parts.month + ' ' + parts.year;
        var clock = new Intl.DateTimeFormat('en-GB', {
          hour: '2-digit', minute: '2-digit', hourCycle: 'h23', timeZoneName: 'short', timeZone: tz
        }).format(at);
        each('.js-day', function (el) { el.textContent = day; });
        each('.js-clock', function (el) { el.textContent = clock; });
      }
      each('.js-zone', function (el) { el.textContent = tz; });
    } catch (e) {
      // An unknown zone: keep the server's rendering (and its zone).
      if (zoneField) { zoneField.value = ''; }
    }
  }

  var consent = document.getElementById('consent');
  if (consent) {
    var hint = document.getElementById('buttons-hint');
    // A service's button also needs one of its actions ticked.
    var anyTicked = function (provider) {
      var boxes = document.querySelectorAll('input[name="actions_' + provider + '"]');
      if (boxes.length === 0) { return true; }
      for (var i = 0; i < boxes.length; i++) {
        if (boxes[i].checked) { return true; }
      }
      return false;
    };
    var sync = function () {
      each('[data-needs-consent]', function (b) { b.disabled = !consent.checked || !anyTicked(b.value); });
      if (hint) { hint.hidden = consent.checked; }
    };
    consent.addEventListener('change', sync);
    each('input[name^="actions_"]', function (box) { box.addEventListener('change', sync); });
    // A page restored from the back/forward cache keeps the box's state.
    window.addEventListener('pageshow', sync);
    sync();
  }
}());
