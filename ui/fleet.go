package ui

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"slate/inventory"
	"slate/lifecycle"
)

// The machine list of a plant floor: sorted, paged and filtered in SQL, retired machines
// hidden unless asked for, bulk actions on a selection, saved filters per user.

// pageSizes are the page sizes offered; the first is the default.
func pageSizes() []int { return []int{50, 100, 200} }

// maxBulk bounds one bulk action: a batch is a few pages, not the whole plant by accident.
const maxBulk = 1000

// listOpts is the machine list's state, read from its URL query. The page is lenient (a
// stale bookmark shows the default instead of an error); the API refuses bad values.
type listOpts struct {
	Filter  inventory.MachineFilter
	Size    int
	Retired bool
}

func readListOpts(q url.Values) listOpts {
	o := listOpts{Size: pageSizes()[0]}
	o.Filter = inventory.MachineFilter{State: q.Get("state"), Label: q.Get("label"), Query: q.Get("q")}
	if o.Filter.State != "" && !lifecycle.ValidState(o.Filter.State) {
		o.Filter.State = ""
	}
	if n, err := strconv.Atoi(q.Get("size")); err == nil && slices.Contains(pageSizes(), n) {
		o.Size = n
	}
	o.Filter.Limit = o.Size
	o.Filter.Offset, _ = strconv.Atoi(q.Get("offset"))
	o.Filter.Offset = max(o.Filter.Offset, 0)
	if k := q.Get("sort"); slices.Contains(inventory.MachineSortKeys(), k) {
		o.Filter.Sort = k
	}
	o.Filter.Desc = q.Get("dir") == "desc"
	o.Retired = q.Get("retired") == "1"
	o.Filter.IncludeRetired = o.Retired
	return o
}

// listQuery is the URL query of the list's filter and sort (what a saved filter stores):
// no offset, no banner codes.
func listQuery(q url.Values) string {
	out := url.Values{}
	for _, k := range []string{"q", "state", "label", "sort", "dir", "size", "retired"} {
		if v := q.Get(k); v != "" {
			out.Set(k, v)
		}
	}
	return out.Encode()
}

// machineRow is one line of the list with what the table shows beside the record.
type machineRow struct {
	inventory.Machine
	IP, IPFrom string
	LastSeen   time.Time
	Seen       bool
	// Power is "on" when the agent called within the last two minutes (a machine that runs
	// Slate's agent is powered), "" when not known: the list never opens BMC sessions.
	Power string
}

// savedFilterView is a saved filter with the list URL it opens.
type savedFilterView struct {
	inventory.SavedFilter
	URL string
}

type sortCol struct {
	Key, Label, URL, Aria, Arrow string
}

// bulkResult is one machine's outcome of a bulk action.
type bulkResult struct {
	ID, Name, Text string
	OK             bool
}

func (u *UI) machines(c echo.Context, s session) error {
	return u.machinesView(c, s, c.QueryParams(), http.StatusOK, nil, nil, "")
}

// machinesView renders the list for query q; fl replaces the banner and results lists a
// bulk action's outcome per machine (refused ones first, in red).
func (u *UI) machinesView(c echo.Context, s session, q url.Values, status int, fl *flash, results []bulkResult, bulkAction string) error {
	ctx := c.Request().Context()
	o := readListOpts(q)
	ms, total, err := u.d.Store.ListMachines(ctx, o.Filter)
	if err != nil {
		return err
	}
	counts, err := u.d.Store.CountByState(ctx)
	if err != nil {
		return err
	}
	var sc []stateCount
	all := 0
	for _, st := range lifecycle.States() {
		if n := counts[st]; n > 0 {
			sc = append(sc, stateCount{st, n})
			if st != lifecycle.Retired || o.Retired {
				all += n
			}
		}
	}
	var macs []string
	for _, m := range ms {
		macs = append(macs, m.MACs...)
	}
	now := time.Now()
	leases, err := u.d.Store.LeaseIPs(ctx, macs, now)
	if err != nil {
		// The IP column is a convenience: show the list without lease addresses, say why in the log.
		u.d.Logger.Warn("ui: machine list without lease addresses", "err", err)
	}
	rows := make([]machineRow, len(ms))
	for i, m := range ms {
		r := machineRow{Machine: m}
		if u.d.LastSeen != nil {
			r.LastSeen, r.Seen = u.d.LastSeen(m.ID)
			if r.Seen && now.Sub(r.LastSeen) < 2*time.Minute {
				r.Power = "on"
			}
		}
		if ip := m.Labels["ip"]; ip != "" {
			r.IP, r.IPFrom = ip, "ip label"
		} else {
			for _, mac := range m.MACs {
				if ip := leases[mac]; ip != "" {
					r.IP, r.IPFrom = ip, "DHCP lease of "+mac
					break
				}
			}
		}
		rows[i] = r
	}
	page := func(off int) string {
		v, _ := url.ParseQuery(listQuery(q))
		v.Set("offset", strconv.Itoa(off))
		return "/machines?" + v.Encode()
	}
	var prev, next string
	if o.Filter.Offset > 0 {
		prev = page(max(o.Filter.Offset-o.Size, 0))
	}
	if o.Filter.Offset+len(ms) < total {
		next = page(o.Filter.Offset + o.Size)
	}
	cur := o.Filter.Sort
	if cur == "" {
		cur = "name"
	}
	var cols []sortCol
	for _, k := range []struct{ key, label string }{{"name", "Name"}, {"state", "State"}, {"release", "Release"}, {"ip", "IP"}, {"updated", "Updated"}} {
		v, _ := url.ParseQuery(listQuery(q))
		v.Set("sort", k.key)
		col := sortCol{Key: k.key, Label: k.label}
		if k.key == cur && !o.Filter.Desc {
			v.Set("dir", "desc")
			col.Aria, col.Arrow = "ascending", "▲"
		} else {
			v.Del("dir")
			if k.key == cur {
				col.Aria, col.Arrow = "descending", "▼"
			}
		}
		col.URL = "/machines?" + v.Encode()
		cols = append(cols, col)
	}
	saved, err := u.d.Store.ListFilters(ctx, s.user.Username)
	if err != nil {
		u.d.Logger.Warn("ui: saved filters not read", "user", s.user.Username, "err", err)
	}
	filters := make([]savedFilterView, len(saved))
	for i, f := range saved {
		filters[i] = savedFilterView{f, "/machines?" + f.Query}
	}
	var approved []inventory.Release
	if canFor(s.user.Role).Write {
		if approved, err = u.d.Store.ListReleases(ctx, lifecycle.ReleaseApproved); err != nil {
			return err
		}
	}
	selected := map[string]bool{}
	if results == nil && c.Request().Method == http.MethodPost {
		// A refused bulk form keeps its ticks: the technician fixes the field, not the selection.
		for _, id := range c.Request().PostForm["id"] {
			selected[id] = true
		}
	}
	refused := 0
	for _, r := range results {
		if !r.OK {
			selected[r.ID] = true // a refused machine stays ticked for another try
			refused++
		}
	}
	// The retired machines hidden by the default view are counted, so "all" is honest.
	hiddenRetired := 0
	if !o.Retired && o.Filter.State == "" {
		hiddenRetired = counts[lifecycle.Retired]
	}
	ld := u.layout(c, s, "Machines", "machines")
	if fl != nil {
		ld.Flash = fl
	}
	retiredURL := func() string {
		v, _ := url.ParseQuery(listQuery(q))
		if o.Retired {
			v.Del("retired")
		} else {
			v.Set("retired", "1")
		}
		return "/machines?" + v.Encode()
	}()
	return u.render(c, status, "machines", struct {
		layoutData
		Machines         []machineRow
		Total, Shown     int
		All              int
		HiddenRetired    int
		StateCounts      []stateCount
		States           []string
		Filter           inventory.MachineFilter
		Opts             listOpts
		Sizes            []int
		Cols             []sortCol
		PrevURL, NextURL string
		RetiredURL       string
		Query            string
		SavedFilters     []savedFilterView
		Approved         []inventory.Release
		Results          []bulkResult
		Refused          int
		Selected         map[string]bool
		BulkAction       string
		Form             url.Values
		Page             int
		Pages            int
	}{ld, rows, total, len(ms), all, hiddenRetired, sc, lifecycle.States(), o.Filter, o, pageSizes(), cols, prev, next, retiredURL,
		listQuery(q), filters, approved, results, refused, selected, bulkAction, c.Request().PostForm,
		o.Filter.Offset/o.Size + 1, max((total+o.Size-1)/o.Size, 1)})
}

// bulkConfirmText is what a technician types to decommission n machines at once.
func bulkConfirmText(n int) string {
	if n == 1 {
		return "decommission 1 machine"
	}
	return fmt.Sprintf("decommission %d machines", n)
}

// bulkPost applies one action to the ticked machines, each through the same lifecycle call
// (and audit event) as its own page. A refusal of one machine does not stop the others: the
// page lists each machine's outcome, refused ones in red and still ticked.
func (u *UI) bulkPost(c echo.Context, s session) error {
	ctx := c.Request().Context()
	form, err := c.FormParams()
	if err != nil {
		return u.errorPage(c, s, http.StatusBadRequest, "The form could not be read: "+err.Error())
	}
	back, _ := url.ParseQuery(form.Get("back"))
	ids := slices.Compact(slices.Sorted(slices.Values(form["id"])))
	action := form.Get("action")
	reason := strings.TrimSpace(form.Get("reason"))
	refuse := func(text, field string) error {
		return u.machinesView(c, s, back, http.StatusUnprocessableEntity, &flash{Kind: "error", Text: text, Field: field}, nil, action)
	}
	switch {
	case len(ids) == 0:
		return refuse("Nothing changed: tick the machines to act on.", "id")
	case len(ids) > maxBulk:
		return refuse(fmt.Sprintf("Nothing changed: at most %d machines at once (%d ticked).", maxBulk, len(ids)), "id")
	}
	var ref string
	switch action {
	case "reinspect":
		if reason == "" {
			return refuse("Nothing changed: give a reason for the re-inspection (it goes in the audit log).", "reason")
		}
	case "release":
		rel, err := u.d.Store.GetRelease(ctx, form.Get("release"))
		if err != nil || rel.State != lifecycle.ReleaseApproved {
			return refuse("Nothing changed: choose an approved release.", "release")
		}
		ref = rel.Name + "@" + rel.Version
	case "expect-boot":
	case "decommission":
		if want := bulkConfirmText(len(ids)); strings.TrimSpace(form.Get("confirm")) != want {
			return refuse(fmt.Sprintf("Nothing decommissioned: type %q to confirm the %d ticked machines.", want, len(ids)), "confirm")
		}
		if reason == "" {
			reason = "decommissioned in a batch from the web UI"
		}
	default:
		return refuse("Nothing changed: choose an action.", "action")
	}
	results := make([]bulkResult, 0, len(ids))
	failed := 0
	// storageErr is the first write Slate could not commit: the page then answers with a
	// server error (507 on a full disk), never a 2xx that reads like success.
	var storageErr error
	for _, id := range ids {
		r := bulkResult{ID: id, Name: id}
		if m, err := u.d.Store.GetMachine(ctx, id); err == nil {
			r.Name = m.Name
		}
		var err error
		switch action {
		case "reinspect":
			_, err = u.d.Lifecycle.Transition(ctx, id, lifecycle.Inspecting, s.user.Username, reason)
			r.Text = "re-inspecting"
		case "release":
			_, err = u.d.Lifecycle.Update(ctx, s.user.Username, id, inventory.MachinePatch{DesiredRelease: &ref})
			r.Text = "desired release " + ref
		case "expect-boot":
			_, err = u.d.Lifecycle.ExpectBoot(ctx, s.user.Username, id)
			r.Text = "network boot expected: power it on"
		case "decommission":
			_, err = u.d.Lifecycle.Transition(ctx, id, lifecycle.Decommissioning, s.user.Username, reason)
			r.Text = "decommissioning"
		}
		if err != nil {
			failed++
			r.Text = errText(err)
			if storageErr == nil && (inventory.IsDiskFull(err) || errors.Is(err, inventory.ErrStorage)) {
				storageErr = err
			}
			// The lifecycle records what it did; a refusal of one machine of a batch is
			// recorded here, so the audit log shows every machine the technician ticked.
			if aerr := u.d.Store.Audit(ctx, s.user.Username, "machine.bulk", id, "refused",
				map[string]any{"action": action, "error": err.Error(), "batch": len(ids)}); aerr != nil {
				u.d.Logger.Error("ui: audit of a refused bulk action not saved", "machine", id, "action", action, "err", aerr)
			}
		} else {
			r.OK = true
		}
		results = append(results, r)
	}
	u.d.Logger.Info("ui: bulk action", "action", action, "machines", len(ids), "refused", failed, "by", s.user.Username)
	// Refused ones first: the technician reads what needs another look before the rest.
	slices.SortStableFunc(results, func(a, b bulkResult) int {
		if a.OK == b.OK {
			return 0
		}
		if !a.OK {
			return -1
		}
		return 1
	})
	if storageErr != nil {
		return u.machinesView(c, s, back, statusFor(storageErr, http.StatusServiceUnavailable), &flash{Kind: "error",
			Text: fmt.Sprintf("Not done for %d of %d machines (rows below): %s", failed, len(ids), errText(storageErr))}, results, action)
	}
	if failed == 0 {
		return u.machinesView(c, s, back, http.StatusOK, &flash{Kind: "ok", Text: fmt.Sprintf("Done for all %d machines (each is in the audit log).", len(ids))}, results, action)
	}
	kind, status := "warn", http.StatusOK
	text := fmt.Sprintf("Done for %d of %d machines; %d refused (red rows below, still ticked): fix their cause, then try again.", len(ids)-failed, len(ids), failed)
	if failed == len(ids) {
		kind, status = "error", http.StatusConflict
		text = fmt.Sprintf("Refused for all %d machines (red rows below): nothing changed.", len(ids))
	}
	return u.machinesView(c, s, back, status, &flash{Kind: kind, Text: text}, results, action)
}

// filterSavePost stores the current filter and sort under a name, for this user only.
func (u *UI) filterSavePost(c echo.Context, s session) error {
	back, _ := url.ParseQuery(c.FormValue("query"))
	query := listQuery(back)
	if err := u.d.Store.SaveFilter(c.Request().Context(), s.user.Username, c.FormValue("name"), query); err != nil {
		return u.machinesView(c, s, back, statusFor(err, http.StatusUnprocessableEntity),
			&flash{Kind: "error", Text: "Filter not saved: " + errText(err), Field: "filter_name"}, nil, "")
	}
	return c.Redirect(http.StatusSeeOther, withFlash("/machines?"+query, "filter-saved"))
}

// filterDeletePost removes one of the user's saved filters.
func (u *UI) filterDeletePost(c echo.Context, s session) error {
	if err := u.d.Store.DeleteFilter(c.Request().Context(), s.user.Username, c.FormValue("name")); err != nil {
		return u.machinesView(c, s, url.Values{}, statusFor(err, http.StatusNotFound),
			&flash{Kind: "error", Text: "Filter not deleted: " + errText(err)}, nil, "")
	}
	return c.Redirect(http.StatusSeeOther, withFlash("/machines", "filter-deleted"))
}
