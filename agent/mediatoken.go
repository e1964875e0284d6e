package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// MediaToken asks Slate for this boot's agent token, for a deploy environment booted from
// Slate's ISO (slate.media): the ISO is shared by every machine and holds no secret, so the
// token is asked by the MAC the network came up on, from the address leased to it. Slate
// answers only for a boot it expects (the operator's "boot from virtual media"), once. Each MAC
// is tried in turn; the refusals are returned joined, for the console, when none gets one.
func MediaToken(ctx context.Context, hc *http.Client, base string, macs []string) (token, machine string, err error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	var errs []error
	for _, mac := range macs {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/boot/media-token/"+url.PathEscape(mac), nil)
		if err != nil {
			return "", "", err
		}
		resp, err := hc.Do(req)
		if err != nil {
			errs = append(errs, fmt.Errorf("ask Slate for the token of %s: %w (is slate.url right?)", mac, err))
			continue
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		msg := strings.TrimSpace(string(b))
		if resp.StatusCode != http.StatusOK {
			errs = append(errs, fmt.Errorf("%s: Slate answered %d: %s", mac, resp.StatusCode, msg))
			continue
		}
		if msg == "" || strings.ContainsAny(msg, " \t\r\n") {
			errs = append(errs, fmt.Errorf("%s: Slate's answer is not a token", mac))
			continue
		}
		return msg, resp.Header.Get("Slate-Machine"), nil
	}
	if len(errs) == 0 {
		return "", "", errors.New("no network interface came up, so no MAC to ask Slate a token for")
	}
	return "", "", errors.Join(errs...)
}
