package api

import (
	"context"
	_ "embed"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

// OpenAPI is the API's OpenAPI 3.1 document, served at /openapi.json.
//
//go:embed openapi.json
var OpenAPI []byte

func (s *Server) openapi(c echo.Context) error {
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, OpenAPI)
}

// readyTimeout bounds each dependency check of /readyz.
const readyTimeout = 2 * time.Second

// readyz answers 200 when PostgreSQL and Redis both answer, else 503.
func (s *Server) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(ctxOf(c), readyTimeout)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		return &Error{Status: http.StatusServiceUnavailable, Code: "not_ready", Message: "PostgreSQL does not answer.", Err: err}
	}
	if err := s.redis.Ping(ctx).Err(); err != nil {
		return &Error{Status: http.StatusServiceUnavailable, Code: "not_ready", Message: "Redis does not answer.", Err: err}
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready", "postgres": "ok", "redis": "ok"})
}
