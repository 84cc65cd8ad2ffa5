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

  // The calendar of the page's language (names, patterns, digits) comes
  // from the server's catalogue, so the day reads exactly as the server
  // writes it; only the fields are computed here, in the fan's zone.
  var calendar = null;
  try {
    calendar = JSON.parse(document.getElementById('calendar').textContent);
  } catch (e) {
    calendar = null;
  }
  function digits(n, width) {
    var s = String(n);
    while (s.length < width) { s = '0' + s; }
    return s.replace(/[0-9]/g, function (d) { return calendar.digits.charAt(+d); });
  }
  function fill(pattern, fields) {
    return pattern.replace(/\{(\w+)\}/g, function (m, k) { return fields[k]; });
  }

  var release = document.querySelector('[data-timing]');
  if (release && tz && calendar) {
    try {
      if (release.getAttribute('data-timing') === 'fixed' && release.getAttribute('data-release-at')) {
        var at = new Date(release.getAttribute('data-release-at'));
        var parts = {};
        new Intl.DateTimeFormat('en-US', {
          weekday: 'short', day: 'numeric', month: 'numeric', year: 'numeric',
          hour: 'numeric', minute: 'numeric', hourCycle: 'h23', timeZone: tz
        }).formatToParts(at).forEach(function (p) { parts[p.type] = p.value; });
        var weekdays = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
        var day = fill(calendar.day, {
          weekday: calendar.weekdays[weekdays.indexOf(parts.weekday)],
          day: digits(+parts.day, 1), month: calendar.months[+parts.month - 1], year: digits(+parts.year, 1)
        });
        var clock = fill(calendar.clock, { hour: digits(+parts.hour % 24, 2), minute: digits(+parts.minute, 2) });
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
