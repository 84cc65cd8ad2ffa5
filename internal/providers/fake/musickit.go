package fake

import (
	"net/http"
	"strings"
)

// musicKitJS stands in for Apple's MusicKit JS v3, as much of it as a
// page that connects a fan uses: MusicKit.configure({developerToken,
// app}) resolves to an instance (MusicKit.getInstance() returns it too),
// whose authorize() resolves to a Music User Token, or rejects when the
// fan declines; the "musickitloaded" event fires on document once the
// script has run. Apple's authorize() opens Apple's sign-in window; the
// stand-in shows its consent screen as a dialog over the page instead
// (so a page's Content-Security-Policy needs nothing more than the
// script's origin and the API's), and gets the token from the fake.
const musicKitJS = `(function () {
  "use strict";
  var base = new URL(document.currentScript.src).origin;
  var instance = null;
  function el(tag, props) { var e = document.createElement(tag); Object.assign(e, props || {}); return e; }
  function consent(inst) {
    return new Promise(function (resolve, reject) {
      var d = el("dialog", { id: "fake-musickit-consent" });
      var name = (inst.app && inst.app.name) || "this app";
      d.append(el("h2", { textContent: "Apple Music (fake): allow " + name + " to access your music library?" }));
      var user = el("input", { id: "fake-musickit-user", name: "user", value: "apple-" + Math.random().toString(36).slice(2, 10) });
      var sf = el("input", { id: "fake-musickit-storefront", name: "storefront", value: "us" });
      var allow = el("button", { id: "fake-musickit-allow", type: "button", textContent: "Allow" });
      var deny = el("button", { id: "fake-musickit-deny", type: "button", textContent: "Don't Allow" });
      d.append(el("label", { textContent: "Apple Account " }), user, el("label", { textContent: " Storefront " }), sf, allow, deny);
      function done() { d.close(); d.remove(); }
      deny.addEventListener("click", function () { done(); reject(new Error("AUTHORIZATION_ERROR: the user declined")); });
      allow.addEventListener("click", function () {
        var body = new URLSearchParams({ developer_token: inst.developerToken, user: user.value, storefront: sf.value });
        fetch(base + "/musickit/authorize", { method: "POST", body: body })
          .then(function (r) { return r.ok ? r.json() : Promise.reject(new Error("AUTHORIZATION_ERROR: HTTP " + r.status)); })
          .then(function (j) { done(); resolve(j.music_user_token); }, function (e) { done(); reject(e); });
      });
      document.body.append(d);
      d.showModal();
    });
  }
  window.MusicKit = {
    configure: function (cfg) {
      if (!cfg || !cfg.developerToken) { return Promise.reject(new Error("CONFIGURATION_ERROR: developerToken is required")); }
      instance = {
        developerToken: cfg.developerToken, app: cfg.app, isAuthorized: false, musicUserToken: "",
        authorize: function () {
          var self = this;
          return consent(self).then(function (t) { self.musicUserToken = t; self.isAuthorized = true; return t; });
        },
        unauthorize: function () { this.musicUserToken = ""; this.isAuthorized = false; return Promise.resolve(); }
      };
      return Promise.resolve(instance);
    },
    getInstance: function () { return instance; }
  };
  document.dispatchEvent(new Event("musickitloaded"));
})();
`

func (s *Server) musicKitRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /musickit/v3/musickit.js", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Header().Set("Access-Control-Allow-Origin", "*")
		_, _ = w.Write([]byte(musicKitJS))
	})
	s.handle(m, "POST /musickit/authorize", "applemusic", s.musicKitAuthorize)
}

// musicKitAuthorize is the consent screen's "Allow": for a valid
// developer token, a Music User Token of that team for the user (whose
// storefront is the form's, "us" by default). A form post from any
// origin, as MusicKit's window would answer its page.
func (s *Server) musicKitAuthorize(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	if err := r.ParseForm(); err != nil {
		amError(w, http.StatusBadRequest, "40000", "Bad Request")
		return
	}
	user, sf := strings.TrimSpace(r.PostForm.Get("user")), r.PostForm.Get("storefront")
	if sf == "" {
		sf = "us"
	}
	if user == "" || len(sf) != 2 || strings.ToLower(sf) != sf {
		amError(w, http.StatusBadRequest, "40000", "user and a storefront (two lower-case letters) are required")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	team, err := s.amDeveloperTeamLocked(r.PostForm.Get("developer_token"), s.now())
	if err != nil {
		amError(w, http.StatusUnauthorized, "40100", "Unauthorized")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"music_user_token": s.issueMusicUserTokenLocked(team, user, sf)})
}

// MusicUserToken plays the fan on the consent screen without a browser:
// the token MusicKit JS would hand the page for userID in storefront,
// for the team devToken belongs to.
func (s *Server) MusicUserToken(devToken, userID, storefront string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	team, err := s.amDeveloperTeamLocked(devToken, s.now())
	if err != nil {
		return "", err
	}
	return s.issueMusicUserTokenLocked(team, userID, storefront), nil
}

// appleControlRoutes serves the Apple Music part of the control API.
func (s *Server) appleControlRoutes(m *http.ServeMux) {
	m.HandleFunc("POST /_fake/applemusic/keys", s.ctlAppleKey)
	m.HandleFunc("POST /_fake/applemusic/catalog", s.ctlAppleItem)
	m.HandleFunc("POST /_fake/applemusic/revoke", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			User string `json:"user"`
		}
		if decode(w, r, &req) {
			writeJSON(w, http.StatusOK, map[string]int{"revoked": s.RevokeAppleUser(req.User)})
		}
	})
}

// ctlAppleKey handles POST /_fake/applemusic/keys {team_id, key_id,
// public_key (PEM)}.
func (s *Server) ctlAppleKey(w http.ResponseWriter, r *http.Request) {
	var req struct {
		TeamID    string `json:"team_id"`
		KeyID     string `json:"key_id"`
		PublicKey string `json:"public_key"`
	}
	if !decode(w, r, &req) {
		return
	}
	if req.TeamID == "" || req.KeyID == "" {
		http.Error(w, "team_id and key_id are required", http.StatusBadRequest)
		return
	}
	if err := s.AddAppleKey(req.TeamID, req.KeyID, []byte(req.PublicKey)); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// ctlAppleItem handles POST /_fake/applemusic/catalog (an AppleItem).
func (s *Server) ctlAppleItem(w http.ResponseWriter, r *http.Request) {
	var it AppleItem
	if !decode(w, r, &it) {
		return
	}
	if (it.Type != "albums" && it.Type != "songs") || it.ID == "" {
		http.Error(w, `type ("albums" or "songs") and id are required`, http.StatusBadRequest)
		return
	}
	s.SetAppleItem(it)
	w.WriteHeader(http.StatusNoContent)
}
