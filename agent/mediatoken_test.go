package agent

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A media-booted agent asks by each MAC in turn: the NIC Slate does not know is refused, the
// enrolled one gets the token; when every MAC is refused, the console gets Slate's reasons.
func TestMediaTokenAsksByEachMAC(t *testing.T) {
	var asked []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked = append(asked, r.URL.Path)
		if r.URL.Path != "/boot/media-token/52:54:00:00:00:02" {
			http.Error(w, "Slate does not know the machine with MAC", http.StatusNotFound)
			return
		}
		w.Header().Set("Slate-Machine", "m-7")
		w.Write([]byte("sla_tok\n"))
	}))
	defer srv.Close()
	tok, m, err := MediaToken(context.Background(), nil, srv.URL+"/", []string{"52:54:00:00:00:01", "52:54:00:00:00:02"})
	if err != nil || tok != "sla_tok" || m != "m-7" || len(asked) != 2 {
		t.Fatalf("token %q machine %q err %v asked %v", tok, m, err, asked)
	}
	_, _, err = MediaToken(context.Background(), nil, srv.URL, []string{"52:54:00:00:00:01"})
	if err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "does not know") {
		t.Fatalf("refusal: %v", err)
	}
	if _, _, err := MediaToken(context.Background(), nil, srv.URL, nil); err == nil {
		t.Fatal("no MAC, no error")
	}
}

// slate.media lets the command line go without a token (the ISO has none); without it a
// missing token is still an error.
func TestParseCmdlineMedia(t *testing.T) {
	c, err := ParseCmdline("slate.media slate.url=http://10.0.0.1:8080      console=ttyS0")
	if err != nil || !c.Media || c.Token != "" || c.URL != "http://10.0.0.1:8080" {
		t.Fatalf("%+v %v", c, err)
	}
	if _, err := ParseCmdline("slate.url=http://10.0.0.1:8080"); err == nil {
		t.Fatal("no token and no slate.media accepted")
	}
}
