package ui

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"slate/inventory"
)

// TestMachineListLastSeenAndPower: the last-seen column is the agent's last call, power is
// "on" only while the agent calls (within two minutes), and — for a machine never seen.
func TestMachineListLastSeenAndPower(t *testing.T) {
	ctx := context.Background()
	st, err := inventory.Open(ctx, filepath.Join(t.TempDir(), "slate.db"), inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	seen := map[string]time.Time{}
	if err := st.Update(ctx, func(tx *inventory.Tx) error {
		for name, ago := range map[string]time.Duration{"live-01": 20 * time.Second, "quiet-01": 3 * time.Hour, "never-01": -1} {
			m, err := tx.CreateMachine(ctx, inventory.NewMachine{Name: name, State: "ready"})
			if err != nil {
				return err
			}
			if ago >= 0 {
				seen[m.ID] = time.Now().Add(-ago)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	u, err := New(Deps{Store: st, LastSeen: func(id string) (time.Time, bool) { at, ok := seen[id]; return at, ok }})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	c := echo.New().NewContext(httptest.NewRequest(http.MethodGet, "/machines", nil), rec)
	if err := u.machinesView(c, session{user: inventory.User{Username: "tom", Role: inventory.RoleOperator}}, c.QueryParams(), http.StatusOK, nil, nil, ""); err != nil {
		t.Fatal(err)
	}
	row := func(name string) string {
		page := rec.Body.String()
		i := strings.Index(page, "<b>"+name+"</b>")
		if i < 0 {
			t.Fatalf("%s not listed", name)
		}
		j := strings.Index(page[i:], "</tr>")
		return page[i : i+j]
	}
	if r := row("live-01"); !strings.Contains(r, `data-label="Power"><span title="its agent called within the last two minutes">on</span>`) || !strings.Contains(r, "just now") {
		t.Fatalf("live machine row: %s", r)
	}
	if r := row("quiet-01"); strings.Contains(r, ">on<") || !strings.Contains(r, "3 h ago") {
		t.Fatalf("machine seen 3 h ago: %s", r)
	}
	if r := row("never-01"); strings.Contains(r, ">on<") || !strings.Contains(r, `data-label="Last seen">—`) {
		t.Fatalf("machine never seen: %s", r)
	}
}
