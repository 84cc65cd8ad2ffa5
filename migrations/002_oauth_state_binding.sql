-- Binds an OAuth state to the browser that started it (login CSRF): the
-- fan page sets a short-lived HttpOnly cookie holding a random nonce and
-- records its SHA-256 here; the callback requires the same cookie. NULL
-- for API clients that start without a browser binding (unchanged).
ALTER TABLE oauth_states
    ADD COLUMN browser_binding bytea CHECK (browser_binding IS NULL OR length(browser_binding) = 32);
