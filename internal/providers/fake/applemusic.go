package fake

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/presave/presave/internal/providers"
)

// The fake Apple Music API, written from Apple's Music API reference:
//
//   - every request carries "Authorization: Bearer <developer token>", an
//     ES256 JWT whose header names a registered key (kid) and whose claims
//     name the key's team (iss), iat and exp, exp at most 15,777,000 s
//     after iat ("Generating Developer Tokens"); anything else is 401;
//   - personal endpoints (/v1/me/...) also carry "Music-User-Token",
//     issued by MusicKit JS for that team; an unknown or revoked one is
//     403 ("an issue with the music user token");
//   - POST /v1/me/library answers 202 Accepted even for IDs it cannot add
//     ("For requested IDs that can't be added to a user's library, Apple
//     Music Library ignores those IDs"): only a read back tells;
//   - a catalogue resource exists in a storefront from its availability
//     time on; multiple-ID fetches leave out what does not exist, a
//     single resource is 404;
//   - the tracks of an empty library playlist are 404 ("No related
//     resources", as Apple's forums report for empty relationships);
//   - 429 for too many requests, without Retry-After (none is documented).

// AppleItem is a catalogue album or song.
type AppleItem struct {
	// Type is "albums" or "songs".
	Type string `json:"type"`
	ID   string `json:"id"`
	UPC  string `json:"upc,omitempty"`  // albums
	ISRC string `json:"isrc,omitempty"` // songs
	// Tracks are an album's song IDs, in order.
	Tracks []string `json:"tracks,omitempty"`
	// Storefronts it is sold in; empty means every storefront.
	Storefronts []string `json:"storefronts,omitempty"`
	// AvailableAt is when it appears; zero means now.
	AvailableAt time.Time `json:"available_at"`
}

// appleMusic is the fake's Apple Music state, guarded by Server.mu.
type appleMusic struct {
	keys    map[string]appleKey   // kid -> key
	tokens  map[string]*appleUser // Music User Token -> user
	catalog map[string]AppleItem  // "albums:ID" / "songs:ID"
	noSub   map[string]bool       // users without a subscription
}

type appleKey struct {
	team string
	pub  *ecdsa.PublicKey
}

type appleUser struct {
	id, storefront, team string
	revoked              bool
}

func newAppleMusic() *appleMusic {
	return &appleMusic{keys: map[string]appleKey{}, tokens: map[string]*appleUser{}, catalog: map[string]AppleItem{}, noSub: map[string]bool{}}
}

// AddAppleKey registers a MusicKit key (its public half, PEM "PUBLIC
// KEY") of team under keyID, as Apple's developer account does when the
// key is created.
func (s *Server) AddAppleKey(teamID, keyID string, publicPEM []byte) error {
	block, _ := pem.Decode(publicPEM)
	if block == nil {
		return errors.New("fake: not a PEM public key")
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return fmt.Errorf("fake: %w", err)
	}
	pub, ok := k.(*ecdsa.PublicKey)
	if !ok {
		return errors.New("fake: not an ECDSA key")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apple.keys[keyID] = appleKey{team: teamID, pub: pub}
	return nil
}

// UseAppleKey registers the public half of a MusicKit key given as its
// .p8 file (PEM "PRIVATE KEY", PKCS #8, P-256) as AppleKeyID of
// AppleTeamID.
func (s *Server) UseAppleKey(p8 []byte) error {
	block, _ := pem.Decode(p8)
	if block == nil {
		return errors.New("fake: not a PEM private key")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return fmt.Errorf("fake: %w", err)
	}
	ec, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return errors.New("fake: not an ECDSA key")
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	if err != nil {
		return err
	}
	return s.AddAppleKey(AppleTeamID, AppleKeyID, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}))
}

// SetAppleItem adds (or replaces) a catalogue album or song.
func (s *Server) SetAppleItem(it AppleItem) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apple.catalog[it.Type+":"+it.ID] = it
}

// RevokeAppleUser makes every Music User Token of userID answer 403, as
// when the fan removes the app's access in their Apple account.
func (s *Server) RevokeAppleUser(userID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, u := range s.apple.tokens {
		if u.id == userID && !u.revoked {
			u.revoked = true
			n++
		}
	}
	return n
}

// SetAppleNoSubscription makes userID an account without a
// subscription: library writes answer 400 40015 ("Insufficient
// Privileges", as Apple's forums report) and library reads 401.
func (s *Server) SetAppleNoSubscription(userID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apple.noSub[userID] = true
}

// issueMusicUserTokenLocked is what MusicKit JS's authorize() yields for
// a user who allowed the app of team. s.mu must be held.
func (s *Server) issueMusicUserTokenLocked(team, userID, storefront string) string {
	tok := randomToken("mut") + randomToken("")
	s.apple.tokens[tok] = &appleUser{id: userID, storefront: storefront, team: team}
	return tok
}

func (s *Server) appleRoutes(m *http.ServeMux) {
	am := providers.AppleMusic
	s.handle(m, "GET /v1/storefronts/{id}", am, s.amAPI(false, s.amStorefronts))
	s.handle(m, "GET /v1/me/storefront", am, s.amAPI(true, s.amMyStorefront))
	s.handle(m, "GET /v1/catalog/{sf}/{type}", am, s.amAPI(false, s.amCatalog))
	s.handle(m, "GET /v1/catalog/{sf}/albums/{id}/tracks", am, s.amAPI(false, s.amAlbumTracks))
	s.handle(m, "POST /v1/me/library", am, s.amAPI(true, s.amLibraryAdd))
	s.handle(m, "GET /v1/me/library/playlists", am, s.amAPI(true, s.amPlaylists))
	s.handle(m, "POST /v1/me/library/playlists", am, s.amAPI(true, s.amPlaylistCreate))
	s.handle(m, "GET /v1/me/library/playlists/{id}", am, s.amAPI(true, s.amPlaylistGet))
	s.handle(m, "GET /v1/me/library/playlists/{id}/tracks", am, s.amAPI(true, s.amPlaylistTracks))
	s.handle(m, "POST /v1/me/library/playlists/{id}/tracks", am, s.amAPI(true, s.amPlaylistAdd))
	s.musicKitRoutes(m)
}

// amCaller is who a request authenticated as: the developer team and,
// on personal endpoints (or when sent), the user.
type amCaller struct {
	team string
	user *appleUser
}

type amHandler func(w http.ResponseWriter, r *http.Request, c amCaller)

// amError writes Apple's error document.
func amError(w http.ResponseWriter, status int, code, title string) {
	writeJSON(w, status, map[string]any{"errors": []map[string]string{{
		"id": randomToken("")[:26], "title": title, "detail": title, "status": strconv.Itoa(status), "code": code,
	}}})
}

// amAPI authenticates a request (the developer token always, the user
// token when personal or present), then applies the rate limit and the
// 5xx fraction before calling h.
func (s *Server) amAPI(personal bool, h amHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		now := s.now()
		s.mu.Lock()
		c, refuse := s.amAuthLocked(r, personal, now)
		if refuse == nil {
			refuse = s.amFaultLocked(c, now)
		}
		if refuse == nil && r.Method != http.MethodGet {
			at, _ := r.Context().Value(arrivalKey{}).(time.Time)
			s.writes = append(s.writes, Write{Provider: providers.AppleMusic, User: c.user.id, Route: r.Method + " " + r.URL.Path, At: at})
		}
		s.mu.Unlock()
		if refuse != nil {
			refuse(w)
			return
		}
		h(w, r, c)
	}
}

// amAuthLocked checks the developer token and the user token. s.mu must
// be held.
func (s *Server) amAuthLocked(r *http.Request, personal bool, now time.Time) (amCaller, func(http.ResponseWriter)) {
	unauthorized := func(w http.ResponseWriter) { amError(w, http.StatusUnauthorized, "40100", "Unauthorized") }
	dev, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return amCaller{}, unauthorized
	}
	team, err := s.amDeveloperTeamLocked(dev, now)
	if err != nil {
		return amCaller{}, unauthorized
	}
	c := amCaller{team: team}
	mut := r.Header.Get("Music-User-Token")
	if mut == "" && !personal {
		return c, nil
	}
	u := s.apple.tokens[mut]
	if u == nil || u.revoked || u.team != team {
		return amCaller{}, func(w http.ResponseWriter) { amError(w, http.StatusForbidden, "40300", "Forbidden") }
	}
	if personal && r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/me/library") && s.apple.noSub[u.id] {
		// "(For personal endpoints) Authorization issues may occur
		// because the user [...] didn't have a valid Apple Music
		// subscription" (HTTP Status Codes, 401).
		return amCaller{}, unauthorized
	}
	c.user = u
	return c, nil
}

// amDeveloperTeamLocked verifies a developer token and returns its team.
func (s *Server) amDeveloperTeamLocked(dev string, now time.Time) (string, error) {
	var claims jwt.RegisteredClaims
	tok, err := jwt.ParseWithClaims(dev, &claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		k, ok := s.apple.keys[kid]
		if !ok {
			return nil, errors.New("unknown key")
		}
		return k.pub, nil
	}, jwt.WithValidMethods([]string{"ES256"}), jwt.WithIssuedAt(), jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(func() time.Time { return now }))
	if err != nil || !tok.Valid || claims.IssuedAt == nil {
		return "", errors.New("invalid developer token")
	}
	kid, _ := tok.Header["kid"].(string)
	if claims.Issuer != s.apple.keys[kid].team {
		return "", errors.New("issuer is not the key's team")
	}
	if claims.ExpiresAt.Sub(claims.IssuedAt.Time) > 15777000*time.Second {
		return "", errors.New("exp more than six months after iat")
	}
	return claims.Issuer, nil
}

// amFaultLocked applies the rate limit (per team) and the injected 5xx
// fraction. s.mu must be held.
func (s *Server) amFaultLocked(c amCaller, now time.Time) func(http.ResponseWriter) {
	f := s.faults[providers.AppleMusic]
	if _, limited := f.limitLocked(c.team, now); limited {
		return func(w http.ResponseWriter) { amError(w, http.StatusTooManyRequests, "42900", "Too Many Requests") }
	}
	if f.errorRate > 0 && rand.Float64() < f.errorRate {
		return func(w http.ResponseWriter) { amError(w, http.StatusServiceUnavailable, "50300", "Service Unavailable") }
	}
	return nil
}

// amItemLocked returns the catalogue item typ/id when it exists in the
// storefront now. s.mu must be held.
func (s *Server) amItemLocked(typ, id, sf string) (AppleItem, bool) {
	it, ok := s.apple.catalog[typ+":"+id]
	if !ok || !s.availableLocked(it, sf) {
		return AppleItem{}, false
	}
	return it, true
}

// availableLocked reports whether it is out in the storefront now.
// s.mu must be held.
func (s *Server) availableLocked(it AppleItem, sf string) bool {
	return !s.now().Before(it.AvailableAt) && (len(it.Storefronts) == 0 || slices.Contains(it.Storefronts, sf))
}

func (s *Server) amStorefronts(w http.ResponseWriter, r *http.Request, _ amCaller) {
	id := r.PathValue("id")
	if len(id) != 2 || strings.ToLower(id) != id {
		amError(w, http.StatusNotFound, "40400", "Resource Not Found")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": []map[string]string{{"id": id, "type": "storefronts"}}})
}

func (s *Server) amMyStorefront(w http.ResponseWriter, _ *http.Request, c amCaller) {
	writeJSON(w, http.StatusOK, map[string]any{"data": []map[string]string{{"id": c.user.storefront, "type": "storefronts"}}})
}

// amResourceLocked renders a catalogue item, with its library relationship
// when asked for and a user token was sent.
func (s *Server) amResourceLocked(it AppleItem, c amCaller, relateLibrary bool) map[string]any {
	res := map[string]any{"id": it.ID, "type": it.Type, "href": "/v1/catalog/" + it.ID,
		"attributes": map[string]any{"name": it.Type + " " + it.ID, "upc": it.UPC, "isrc": it.ISRC}}
	rel := map[string]any{}
	if it.Type == "albums" {
		// An album's tracks relationship comes by default (its first
		// page; the fake's albums fit in one).
		tracks := []map[string]string{}
		for _, id := range it.Tracks {
			tracks = append(tracks, map[string]string{"id": id, "type": "songs"})
		}
		rel["tracks"] = map[string]any{"data": tracks}
	}
	res["relationships"] = rel
	if relateLibrary && c.user != nil {
		u := s.userLocked(providers.AppleMusic, c.user.id)
		lib := []map[string]string{}
		if (it.Type == "albums" && u.albums[it.ID]) || (it.Type == "songs" && u.tracks[it.ID]) {
			lib = append(lib, map[string]string{"id": "l." + it.ID, "type": "library-" + it.Type})
		}
		rel["library"] = map[string]any{"data": lib}
	}
	return res
}

// amCatalog answers GET /v1/catalog/{sf}/albums|songs: by ids (what
// exists in the storefront, the rest left out), or by filter[upc]
// (albums) / filter[isrc] (songs).
func (s *Server) amCatalog(w http.ResponseWriter, r *http.Request, c amCaller) {
	typ, sf, q := r.PathValue("type"), r.PathValue("sf"), r.URL.Query()
	if typ != "albums" && typ != "songs" {
		amError(w, http.StatusNotFound, "40400", "Resource Not Found")
		return
	}
	filterKey := map[string]string{"albums": "filter[upc]", "songs": "filter[isrc]"}[typ]
	ids, filter := splitList(q.Get("ids")), q.Get(filterKey)
	if (len(ids) == 0) == (filter == "") {
		amError(w, http.StatusBadRequest, "40005", "Invalid Parameter Value: one of ids or "+filterKey+" is required")
		return
	}
	relate := slices.Contains(splitList(q.Get("relate")), "library")
	s.mu.Lock()
	defer s.mu.Unlock()
	data := []map[string]any{}
	if filter != "" {
		for _, it := range s.apple.catalog {
			if it.Type == typ && (strings.EqualFold(it.UPC, filter) || strings.EqualFold(it.ISRC, filter)) && s.availableLocked(it, sf) {
				data = append(data, s.amResourceLocked(it, c, relate))
			}
		}
	}
	for _, id := range ids {
		if it, ok := s.amItemLocked(typ, id, sf); ok {
			data = append(data, s.amResourceLocked(it, c, relate))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": data})
}

// amAlbumTracks answers an album's tracks relationship.
func (s *Server) amAlbumTracks(w http.ResponseWriter, r *http.Request, _ amCaller) {
	s.mu.Lock()
	it, ok := s.amItemLocked("albums", r.PathValue("id"), r.PathValue("sf"))
	s.mu.Unlock()
	if !ok {
		amError(w, http.StatusNotFound, "40400", "Resource Not Found")
		return
	}
	data := []map[string]string{}
	for _, id := range it.Tracks {
		data = append(data, map[string]string{"id": id, "type": "songs"})
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": data})
}

// amLibraryAdd answers POST /v1/me/library?ids[albums]=…&ids[songs]=…:
// 202 with no body, adding only what exists in the user's storefront.
func (s *Server) amLibraryAdd(w http.ResponseWriter, r *http.Request, c amCaller) {
	q := r.URL.Query()
	albums, songs := splitList(q.Get("ids[albums]")), splitList(q.Get("ids[songs]"))
	if len(albums) == 0 && len(songs) == 0 {
		amError(w, http.StatusBadRequest, "40005", "Invalid Parameter Value: ids required")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.apple.noSub[c.user.id] {
		amError(w, http.StatusBadRequest, "40015", "Insufficient Privileges")
		return
	}
	u := s.userLocked(providers.AppleMusic, c.user.id)
	for _, id := range albums {
		if _, ok := s.amItemLocked("albums", id, c.user.storefront); ok {
			u.albums[id] = true
		}
	}
	for _, id := range songs {
		if _, ok := s.amItemLocked("songs", id, c.user.storefront); ok {
			u.tracks[id] = true
		}
	}
	w.WriteHeader(http.StatusAccepted)
}

// amPlaylistResource renders a library playlist.
func amPlaylistResource(pl *playlist) map[string]any {
	return map[string]any{"id": pl.id, "type": "library-playlists", "href": "/v1/me/library/playlists/" + pl.id,
		"attributes": map[string]any{"name": pl.name, "canEdit": true, "description": map[string]string{"standard": pl.description}}}
}

// amPage answers one page of a paginated collection (limit 1–100,
// default 25; offset), with "next" when more follow.
func amPage(w http.ResponseWriter, r *http.Request, all []map[string]any) {
	q := r.URL.Query()
	limit, offset := 25, 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			amError(w, http.StatusBadRequest, "40005", "Invalid Parameter Value: limit")
			return
		}
		limit = n
	}
	if v := q.Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			amError(w, http.StatusBadRequest, "40005", "Invalid Parameter Value: offset")
			return
		}
		offset = n
	}
	out := map[string]any{"data": all[min(offset, len(all)):min(offset+limit, len(all))]}
	if offset+limit < len(all) {
		out["next"] = r.URL.Path + "?" + url.Values{"offset": {strconv.Itoa(offset + limit)}}.Encode()
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) amPlaylists(w http.ResponseWriter, r *http.Request, c amCaller) {
	s.mu.Lock()
	all := []map[string]any{}
	for _, pl := range s.ownedLocked(providers.AppleMusic, c.user.id) {
		all = append(all, amPlaylistResource(pl))
	}
	s.mu.Unlock()
	amPage(w, r, all)
}

// amPlaylistCreate answers POST /v1/me/library/playlists: 201 with the
// new playlist. "attributes.name" is required.
func (s *Server) amPlaylistCreate(w http.ResponseWriter, r *http.Request, c amCaller) {
	var body struct {
		Attributes struct {
			Name        string `json:"name"`
			Description string `json:"description"`
		} `json:"attributes"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&body); err != nil || body.Attributes.Name == "" {
		amError(w, http.StatusBadRequest, "40007", "Invalid Request Body: attributes.name is required")
		return
	}
	s.mu.Lock()
	pl := s.createPlaylistLocked(providers.AppleMusic, c.user.id, body.Attributes.Name, body.Attributes.Description, false)
	res := amPlaylistResource(pl)
	delay := s.createDelay
	s.mu.Unlock()
	s.answerAfter(r, delay)
	writeJSON(w, http.StatusCreated, map[string]any{"data": []map[string]any{res}})
}

// amOwnPlaylistLocked is the user's library playlist id, or nil (404:
// another user's library playlist does not exist for this one).
func (s *Server) amOwnPlaylistLocked(c amCaller, id string) *playlist {
	pl := s.playlists[userKey{providers.AppleMusic, id}]
	if pl == nil || pl.owner != c.user.id {
		return nil
	}
	return pl
}

func (s *Server) amPlaylistGet(w http.ResponseWriter, r *http.Request, c amCaller) {
	s.mu.Lock()
	pl := s.amOwnPlaylistLocked(c, r.PathValue("id"))
	var res map[string]any
	if pl != nil {
		res = amPlaylistResource(pl)
	}
	s.mu.Unlock()
	if pl == nil {
		amError(w, http.StatusNotFound, "40400", "Resource Not Found")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": []map[string]any{res}})
}

// amPlaylistTracks answers a library playlist's tracks: library songs
// whose playParams name the catalogue song; 404 when there are none.
func (s *Server) amPlaylistTracks(w http.ResponseWriter, r *http.Request, c amCaller) {
	s.mu.Lock()
	pl := s.amOwnPlaylistLocked(c, r.PathValue("id"))
	all := []map[string]any{}
	if pl != nil {
		for i, id := range pl.items {
			all = append(all, map[string]any{"id": fmt.Sprintf("i.%s.%d", id, i), "type": "library-songs",
				"attributes": map[string]any{"playParams": map[string]any{"id": "i." + id, "kind": "song", "isLibrary": true, "catalogId": id}}})
		}
	}
	s.mu.Unlock()
	switch {
	case pl == nil:
		amError(w, http.StatusNotFound, "40400", "Resource Not Found")
	case len(all) == 0:
		amError(w, http.StatusNotFound, "40403", "No related resources")
	default:
		amPage(w, r, all)
	}
}

// amPlaylistAdd answers POST …/playlists/{id}/tracks: 204; songs not in
// the user's storefront are left out. Apple's reference is silent on
// them; leaving them out is what its library add does, and only a read
// back can tell.
func (s *Server) amPlaylistAdd(w http.ResponseWriter, r *http.Request, c amCaller) {
	var body struct {
		Data []struct {
			ID   string `json:"id"`
			Type string `json:"type"`
		} `json:"data"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&body); err != nil || len(body.Data) == 0 {
		amError(w, http.StatusBadRequest, "40007", "Invalid Request Body: data is required")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	pl := s.amOwnPlaylistLocked(c, r.PathValue("id"))
	if pl == nil {
		amError(w, http.StatusNotFound, "40400", "Resource Not Found")
		return
	}
	for _, d := range body.Data {
		if d.Type != "songs" && d.Type != "library-songs" {
			amError(w, http.StatusBadRequest, "40007", "Invalid Request Body: type must be songs")
			return
		}
	}
	for _, d := range body.Data {
		if _, ok := s.amItemLocked("songs", d.ID, c.user.storefront); ok {
			pl.items = append(pl.items, d.ID)
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// NewAppleKey creates a MusicKit key for teamID under keyID, registers
// its public half and returns its private half as Apple's .p8 file (PEM
// "PRIVATE KEY", PKCS #8) for APPLE_PRIVATE_KEY.
func (s *Server) NewAppleKey(teamID, keyID string) ([]byte, error) {
	p8, pub, err := GenerateAppleKey()
	if err != nil {
		return nil, err
	}
	return p8, s.AddAppleKey(teamID, keyID, pub)
}

// GenerateAppleKey returns a new P-256 key as a .p8 file and its public
// half (PEM "PUBLIC KEY"), for a fake in another process
// (POST /_fake/applemusic/keys).
func GenerateAppleKey() (p8, publicPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), nil
}

// The team and key the fake's Apple Music credentials name (AppleMusicEnv).
const (
	AppleTeamID = "FAKETEAM01"
	AppleKeyID  = "FAKEKEY001"
)

// AppleMusicEnv creates a MusicKit key at the fake and returns the
// settings that make presave use it (AppleEnv).
func (s *Server) AppleMusicEnv() ([][2]string, error) {
	p8, err := s.NewAppleKey(AppleTeamID, AppleKeyID)
	if err != nil {
		return nil, err
	}
	return AppleEnv(p8), nil
}

// AppleEnv is APPLE_TEAM_ID, APPLE_KEY_ID and APPLE_PRIVATE_KEY (the
// .p8's PEM) for a key the fake knows as AppleKeyID of AppleTeamID.
func AppleEnv(p8 []byte) [][2]string {
	return [][2]string{{"APPLE_TEAM_ID", AppleTeamID}, {"APPLE_KEY_ID", AppleKeyID}, {"APPLE_PRIVATE_KEY", string(p8)}}
}

// RegisterAppleKey is AddAppleKey (as AppleKeyID of AppleTeamID) for a
// fake in another process, at base, through its control API.
func RegisterAppleKey(ctx context.Context, base string, publicPEM []byte) error {
	body, _ := json.Marshal(map[string]string{"team_id": AppleTeamID, "key_id": AppleKeyID, "public_key": string(publicPEM)})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(base, "/")+"/_fake/applemusic/keys", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("fake: registering the Apple Music key: HTTP %d", resp.StatusCode)
	}
	return nil
}
