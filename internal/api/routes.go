package api

import (
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/providers/registry"
)

// monitoringRoot is where asynqmon is mounted.
const monitoringRoot = "/monitoring"

// routes builds the router: every route of the API is registered here,
// and each one is documented in openapi.json (a test checks both agree).
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
	rel.POST("/:id/cancel", s.cancelRelease)

	// Fans: connect and consent (rate-limited per IP).
	limit := s.fanRateLimit()
	e.POST("/v1/connect/:provider/start", s.start, limit)
	e.GET("/v1/connect/:provider/start", s.startLink, limit)
	for _, n := range providers.Names {
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
