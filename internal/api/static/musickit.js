// presave's Apple Music connect page: MusicKit JS authorizes the fan
// (Apple's sign-in), and the page posts the Music User Token it yields,
// with the page's one-time state, to /connect/applemusic/callback. A fan
// who declines (or cancels) posts error=access_denied instead; nothing is
// saved then.
(function () {
  'use strict';
  var form = document.getElementById('musickit-form');
  var button = document.getElementById('musickit-connect');
  if (!form || !button) { return; }
  var status = document.getElementById('musickit-status');
  var music = null;

  function submit(name, value) {
    var field = document.createElement('input');
    field.type = 'hidden';
    field.name = name;
    field.value = value;
    form.appendChild(field);
    form.submit();
  }

  function ready() {
    window.MusicKit.configure({
      developerToken: form.getAttribute('data-developer-token'),
      app: { name: form.getAttribute('data-app-name'), build: '1' }
    }).then(function (m) {
      music = m;
      button.disabled = false;
    }, function () {
      status.textContent = status.getAttribute('data-failed');
    });
  }

  // authorize() opens Apple's sign-in window, which a browser allows only
  // from a click.
  button.addEventListener('click', function () {
    if (!music) { return; }
    button.disabled = true;
    music.authorize().then(function (token) {
      if (token) { submit('music_user_token', token); } else { submit('error', 'access_denied'); }
    }, function () {
      submit('error', 'access_denied');
    });
  });

  if (window.MusicKit) { ready(); } else { document.addEventListener('musickitloaded', ready, { once: true }); }
})();
