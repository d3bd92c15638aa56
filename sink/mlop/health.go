package mlop

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Health checks that a service answers GET url with 200 (the ingest's
// /health, the py service's /healthz, the backend's /api/health). It sends
// no credentials and makes one attempt with a short timeout.
func (c *Client) Health(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("health %s: %w", stripQuery(url), err)
	}
	req.Header.Set("User-Agent", c.userAgent)
	resp, err := (&http.Client{Transport: c.rt}).Do(req)
	if err != nil {
		return fmt.Errorf("health %s: %w", stripQuery(url), redactURLError(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health %s: HTTP %d", stripQuery(url), resp.StatusCode)
	}
	return nil
}
