package api

import (
	"net/http"
	"slices"
	"strconv"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/providers/registry"
)

// monitoringRoot is where asynqmon is mounted.
const monitoringRoot = "/monitoring"

// routes builds the router: every route of the JSON API is registered
// here, and each one is documented in openapi.json (a test checks both
// agree); the fan page's routes are pageRoutes, below.
func (s *Server) routes() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	if s.cfg.TrustProxyHeaders {
		e.IPExtractor = echo.ExtractIPFromXFFHeader()
	} else {
		// Without a trusted proxy, X-Forwarded-For is whatever the client
		// says: rate limits and consent records use the peer address.
		e.IPExtractor = echo.ExtractIPDirect()
	}
	e.Use(
		middleware.RequestID(),
		s.observe,
		middleware.RecoverWithConfig(middleware.RecoverConfig{DisableErrorHandler: true}),
		middleware.BodyLimit(strconv.Itoa(BodyLimit)),
		middleware.ContextTimeout(s.cfg.RequestTimeout),
	)

	// Operations.
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{})), s.requireMetrics)
	e.GET("/openapi.json", s.openapi)
	mon := e.Group(monitoringRoot, s.requireMonitoring)
	mon.Any("", echo.WrapHandler(s.monitor))
	mon.Any("/*", echo.WrapHandler(s.monitor))

	// Releases (admin token).
	rel := e.Group("/v1/releases", s.requireAdmin)
	rel.POST("", s.createRelease)
	rel.GET("", s.listReleases)
	rel.GET("/:id", s.getRelease)
	rel.PATCH("/:id", s.patchRelease)
	rel.GET("/:id/plan", s.releasePlan)
	rel.POST("/:id/cancel", s.cancelRelease)
	rel.POST("/:id/resume", s.resumeRelease)

	// Fans: connect and consent (rate-limited per IP).
	limit := s.limit
	e.POST("/v1/connect/:provider/start", s.start, limit)
	e.GET("/v1/connect/:provider/start", s.startLink, limit)
	for _, n := range providers.Names {
		if n == providers.AppleMusic {
			// No redirect: the MusicKit page posts the user token.
			e.POST(registry.CallbackPath(n), s.musicKitCallback, limit)
			continue
		}
		// The exact path the providers' redirect URIs name.
		e.GET(registry.CallbackPath(n), s.callback(n), limit)
	}

	// Fan self-service (fan token).
	me := e.Group("/v1/me", limit, s.requireFan)
	me.GET("", s.exportMe)
	me.DELETE("", s.deleteMe)
	me.DELETE("/presaves/:id", s.withdraw)
	me.DELETE("/connections/:provider", s.disconnect)
	return e
}

// healthz answers while the process runs.
func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// pageRoutes adds the fan page's routes (MountPage calls it). They are
// added one by one rather than in a Group: echo gives a group with
// middleware a catch-all not-found route, which for these prefixes would
// turn the JSON API's 404s into pages. Every one is marked a page route
// first, so handleError answers its failures (the rate limiter's too) with
// a page, and shares the fan endpoints' per-IP limit.
func (s *Server) pageRoutes(p *page) {
	limit := s.limit
	route := func(method, path string, h echo.HandlerFunc, mw ...echo.MiddlewareFunc) {
		s.echo.Add(method, path, h, append([]echo.MiddlewareFunc{p.mark, p.headers}, mw...)...)
	}
	fan := []echo.MiddlewareFunc{p.back("/me"), limit, s.requireFan}
	withCSRF := append(slices.Clone(fan), p.checkCSRF)
	route(http.MethodGet, "/static/*", p.asset)
	route(http.MethodGet, "/lang/:code", p.language, limit)
	route(http.MethodGet, "/r/:slug", p.release, limit)
	route(http.MethodPost, "/r/:slug/start", p.start, backToRelease, limit, p.checkCSRF)
	route(http.MethodGet, registry.AuthorizePath, p.musicKitPage, limit)
	route(http.MethodGet, "/me", p.manage, limit)
	route(http.MethodGet, "/me/presaves/:id", p.presave, fan...)
	route(http.MethodGet, "/me/presaves/:id/withdraw", p.confirmWithdraw, fan...)
	route(http.MethodPost, "/me/presaves/:id/withdraw", p.withdraw, withCSRF...)
	route(http.MethodGet, "/me/connections/:provider/disconnect", p.confirmDisconnect, fan...)
	route(http.MethodPost, "/me/connections/:provider/disconnect", p.disconnect, withCSRF...)
	route(http.MethodGet, "/me/delete", p.confirmDelete, fan...)
	route(http.MethodPost, "/me/delete", p.deleteFan, withCSRF...)
	route(http.MethodGet, "/me/export", p.export, fan...)
}
