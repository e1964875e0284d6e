package ui_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"slate/inventory"
	"slate/lifecycle"
)

// defectSite adds to the UI test site what issue 21's defects need: facts for press-01, a
// retired machine that ran a release, a machine failed on a BMC error chain, and an audit
// event whose details are long unbroken strings.
func defectSite(t *testing.T) (*site, map[string]inventory.Machine) {
	t.Helper()
	s := newSite(t)
	ctx := context.Background()
	ms := map[string]inventory.Machine{}
	for _, n := range []string{"press-01", "press-02", "hmi-01"} {
		ms[n], _ = s.a.Store.GetMachine(ctx, n)
	}
	facts := `{"schema":1,"collected_at":"2026-12-07T23:58:00Z","system":{"vendor":"Siemens","product":"IPC647E","serial":"SN-press-01","arch":"x86_64"},
"firmware":{"mode":"uefi","secure_boot":"enabled"},"cpu":{"model":"Intel Xeon E-2278GE","sockets":1,"cores":8,"threads":16},
"memory":{"total_bytes":34359738368},"disks":[{"name":"nvme0n1","model":"Samsung PM983","serial":"S4GNNX0M","size_bytes":960197124096,"transport":"nvme"}],
"nics":[{"name":"eno1","mac":"52:54:00:00:10:01","link":true,"speed_mbps":1000}],"tpm":{"present":true,"version":"2.0"}}`
	if err := s.a.Store.Update(ctx, func(tx *inventory.Tx) error {
		_, _, err := tx.PutFacts(ctx, ms["press-01"].ID, json.RawMessage(facts), inventory.FactFields{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// An approved release, and a retired machine whose disks were erased after running it.
	if err := s.a.Store.Update(ctx, func(tx *inventory.Tx) error {
		r, err := tx.CreateRelease(ctx, inventory.Release{Name: "hmi", Version: "7", Kind: "disk", ImageRef: "plant/hmi", CreatedBy: "x"})
		if err != nil {
			return err
		}
		if err := tx.SetReleaseState(ctx, r.ID, lifecycle.ReleaseApproved, "y"); err != nil {
			return err
		}
		m, err := tx.CreateMachine(ctx, inventory.NewMachine{Name: "old-hmi", State: lifecycle.Retired})
		if err != nil {
			return err
		}
		booted := "hmi@7"
		ms["old-hmi"], err = tx.UpdateMachine(ctx, m.ID, inventory.MachinePatch{BootedRelease: &booted})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	m, err := s.a.Lifecycle.Enroll(ctx, nil, "seed", lifecycle.EnrollRequest{Name: "bmc-fail", MACs: []string{"52:54:00:00:10:05"}})
	if err != nil {
		t.Fatal(err)
	}
	chain := `BMC power-on failed: bmc https://10.0.0.21: connect: Get "https://10.0.0.21/redfish/v1/": dial tcp 10.0.0.21:443: i/o timeout (fix the BMC address)`
	if ms["bmc-fail"], err = s.a.Lifecycle.Fail(ctx, m.ID, "slate", chain, ""); err != nil {
		t.Fatal(err)
	}
	digest := "plant/line3-hmi-with-a-long-repository-name@sha256:" + strings.Repeat("9f86d081884c7d65", 4)
	if err := s.a.Store.Audit(ctx, "tom", "registry.delete", digest, "ok", map[string]any{"image": digest,
		"tags": []string{"plant/line3-hmi-with-a-long-repository-name:2026.12.07-build-000123456789"}, "reason": "superseded by 2026.12.08"}); err != nil {
		t.Fatal(err)
	}
	return s, ms
}

// textOutsideDetails is an element's visible text without its <details> (the raw chain).
func textOutsideDetails(sel string) string {
	return fmt.Sprintf(`(() => { const e = document.querySelector(%q); if (!e) return ""; const c = e.cloneNode(true);
		c.querySelectorAll("details").forEach(d => d.remove()); return c.textContent; })()`, sel)
}

// TestDefectsInChromium covers issue 21's six defects in a browser: facts, the live "Now:"
// and skipped journey steps, refusals in red tied to their field, the retired machine, BMC
// failures in plain language.
func TestDefectsInChromium(t *testing.T) {
	s, ms := defectSite(t)
	ctx := context.Background()
	br, cancel := browser(t)
	defer cancel()
	login(t, br, s.srv.URL, "tom", "tech-pass-01")
	page := func(name string) string { return s.srv.URL + "/machines/" + ms[name].ID }

	// 1. Hardware facts: a summary, the raw JSON behind a closed toggle.
	var facts string
	var rawOpen, rawThere bool
	if err := chromedp.Run(br,
		chromedp.Navigate(page("press-01")),
		chromedp.WaitVisible(`#facts`, chromedp.ByID),
		chromedp.Text(`#facts`, &facts, chromedp.ByID),
		chromedp.Evaluate(`!!document.querySelector("#facts details.raw")`, &rawThere),
		chromedp.Evaluate(`!!document.querySelector("#facts details.raw[open]")`, &rawOpen),
	); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Intel Xeon E-2278GE · 1 socket, 8 cores, 16 threads", "32.0 GiB", "Samsung PM983", "S4GNNX0M", "894.3 GiB",
		"52:54:00:00:10:01", "up", "UEFI · Secure Boot enabled", "TPM 2.0", "Raw facts"} {
		if !strings.Contains(facts, want) {
			t.Errorf("facts panel lacks %q:\n%s", want, facts)
		}
	}
	if strings.Contains(facts, "Not inspected yet") || !rawThere || rawOpen {
		t.Fatalf("facts panel: raw toggle present %v, open %v:\n%s", rawThere, rawOpen, facts)
	}
	shot(t, br, "defect1-facts")

	// 2a. Skipped steps: press-02 was enrolled by hand and never configuring.
	var skipped, done []string
	if err := chromedp.Run(br,
		chromedp.Navigate(page("press-02")),
		chromedp.WaitVisible(`.journey`, chromedp.ByQuery),
		chromedp.Evaluate(`[...document.querySelectorAll(".journey li.skipped")].map(l => l.textContent)`, &skipped),
		chromedp.Evaluate(`[...document.querySelectorAll(".journey li.done")].map(l => l.textContent)`, &done),
	); err != nil {
		t.Fatal(err)
	}
	if strings.Join(skipped, "|") != "discovered skipped|configuring skipped" || len(done) != 4 {
		t.Fatalf("journey of press-02: skipped %q, done %q", skipped, done)
	}
	shot(t, br, "defect2-journey")

	// 2b. "Now:" follows the state live: the explanation the reconciler gives after a
	// transition reaches the open page without a reload.
	if err := s.a.Reconciler.ReconcileOnce(ctx); err != nil {
		t.Fatal(err)
	}
	var now string
	if err := chromedp.Run(br,
		chromedp.Navigate(page("hmi-01")),
		chromedp.WaitVisible(`#now`, chromedp.ByID),
		chromedp.Text(`#now`, &now, chromedp.ByID),
	); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(now, "technician to power it on") {
		t.Fatalf("Now: %q", now)
	}
	if _, err := s.a.Lifecycle.Fail(ctx, ms["hmi-01"].ID, "agent", "disk /dev/sda not found", ""); err != nil {
		t.Fatal(err)
	}
	lctx, lcancel := context.WithTimeout(br, 15*time.Second)
	defer lcancel()
	if err := chromedp.Run(lctx, chromedp.WaitVisible(`h1 .badge.s-failed`, chromedp.ByQuery)); err != nil {
		t.Fatalf("the page did not follow the transition: %v", err)
	}
	time.Sleep(time.Second) // the refresh for the transition is done: only the next event can change "Now:"
	if err := s.a.Reconciler.ReconcileOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Run(lctx, waitJS(`(document.querySelector("#now")||{}).textContent.includes("failed while inspecting")`),
		chromedp.Text(`#now`, &now, chromedp.ByID)); err != nil {
		chromedp.Run(br, chromedp.Text(`#now`, &now, chromedp.ByID))
		t.Fatalf("\"Now:\" went stale after the reconciler explained the new state: %q (%v)", now, err)
	}

	// 3. A refusal is red, on the page of the form, tied to its field; ?ok= shows only codes.
	var hasOK, hasErr bool
	var describedBy, invalid, flash string
	if err := chromedp.Run(br,
		chromedp.Navigate(page("press-02")),
		chromedp.WaitVisible(`#decom-btn`, chromedp.ByID),
		// The button waits for the right name; a technician without JavaScript can still post.
		chromedp.Evaluate(`document.querySelector("form[action$='/decommission'] input[name=confirm_name]").value = "press-2";
			document.getElementById("decom-btn").disabled = false; document.getElementById("decom-btn").click(); true`, nil),
		waitJS(`document.readyState === "complete" && !!document.querySelector(".flash.error")`),
		chromedp.Evaluate(`!!document.querySelector(".flash.ok")`, &hasOK),
		chromedp.Text(`.flash.error`, &flash, chromedp.ByQuery),
		chromedp.AttributeValue(`form[action$='/decommission'] input[name=confirm_name]`, "aria-describedby", &describedBy, nil, chromedp.ByQuery),
		chromedp.AttributeValue(`form[action$='/decommission'] input[name=confirm_name]`, "aria-invalid", &invalid, nil, chromedp.ByQuery),
	); err != nil {
		t.Fatal(err)
	}
	if hasOK || !strings.Contains(flash, "Not decommissioned: type the machine's name exactly (press-02)") || describedBy != "flash" || invalid != "true" {
		t.Fatalf("refused decommission: green %v, text %q, aria-describedby %q, aria-invalid %q", hasOK, flash, describedBy, invalid)
	}
	if m, _ := s.a.Store.GetMachine(ctx, ms["press-02"].ID); m.State != lifecycle.Deployed {
		t.Fatalf("a refused decommission moved the machine to %s", m.State)
	}
	shot(t, br, "defect3-refusal")
	if err := chromedp.Run(br,
		chromedp.Navigate(page("press-02")+"?ok=decommission-name-mismatch"),
		chromedp.WaitVisible(`h1`, chromedp.ByQuery),
		chromedp.Evaluate(`!!document.querySelector(".flash.ok")`, &hasOK),
		chromedp.Evaluate(`!!document.querySelector(".flash.error")`, &hasErr),
	); err != nil {
		t.Fatal(err)
	}
	if hasOK || !hasErr {
		t.Fatalf("?ok=<refusal code>: green %v, red %v", hasOK, hasErr)
	}
	var anyFlash bool
	if err := chromedp.Run(br,
		chromedp.Navigate(page("press-02")+"?ok=Your+machine+is+safe"),
		chromedp.WaitVisible(`h1`, chromedp.ByQuery),
		chromedp.Evaluate(`!!document.querySelector("#flash")`, &anyFlash),
	); err != nil {
		t.Fatal(err)
	}
	if anyFlash {
		t.Fatal("?ok=<any text> shows a banner")
	}

	// 4. A retired machine offers no release and does not claim to boot the erased one.
	var releaseForms int
	var release string
	if err := chromedp.Run(br,
		chromedp.Navigate(page("old-hmi")),
		chromedp.WaitVisible(`#release-erased`, chromedp.ByID),
		chromedp.Evaluate(`document.querySelectorAll("form[action$='/release']").length`, &releaseForms),
		chromedp.Text(`#release-erased`, &release, chromedp.ByID),
	); err != nil {
		t.Fatal(err)
	}
	if releaseForms != 0 || !strings.Contains(release, "none: its disks were erased") || !strings.Contains(release, "it last ran hmi@7") {
		t.Fatalf("retired machine: %d release forms, release %q", releaseForms, release)
	}
	shot(t, br, "defect4-retired")

	// 6. A BMC failure: plain language first, the Go chain behind a closed <details>.
	var plain string
	var detailOpen, detailThere bool
	if err := chromedp.Run(br,
		chromedp.Navigate(page("bmc-fail")),
		chromedp.WaitVisible(`.flash.error`, chromedp.ByQuery),
		chromedp.Evaluate(textOutsideDetails(`.panel .flash.error`), &plain),
		chromedp.Evaluate(`!!document.querySelector(".panel .flash.error details.detail")`, &detailThere),
		chromedp.Evaluate(`!!document.querySelector(".panel .flash.error details.detail[open]")`, &detailOpen),
	); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(plain, "BMC at 10.0.0.21 does not answer: check address, VLAN and credentials.") || strings.Contains(plain, "dial tcp") ||
		!detailThere || detailOpen {
		t.Fatalf("BMC failure: %q (detail there %v, open %v)", plain, detailThere, detailOpen)
	}
	shot(t, br, "defect6-bmc-failed")
	// A real one: enrolling with a BMC address where nothing listens (loopback).
	if err := chromedp.Run(br,
		chromedp.Navigate(s.srv.URL+"/machines/new"),
		chromedp.WaitVisible(`#bmc_address`, chromedp.ByID),
		chromedp.SendKeys(`#name`, "cell-9", chromedp.ByID),
		chromedp.SendKeys(`#bmc_address`, "https://127.0.0.1:1", chromedp.ByID),
		chromedp.SendKeys(`#bmc_username`, "admin", chromedp.ByID),
		chromedp.SendKeys(`#bmc_password`, "secret", chromedp.ByID),
		chromedp.Submit(`#name`, chromedp.ByID),
		waitJS(`document.readyState === "complete" && !!document.querySelector(".flash.error")`),
		chromedp.Evaluate(textOutsideDetails(`.flash.error`), &plain),
		chromedp.Evaluate(`!!document.querySelector(".flash.error details.detail")`, &detailThere),
		chromedp.AttributeValue(`#bmc_address`, "aria-describedby", &describedBy, nil, chromedp.ByID),
	); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(plain, "BMC at 127.0.0.1:1 refuses connections") || strings.Contains(plain, "dial tcp") || !detailThere || describedBy != "flash" {
		t.Fatalf("enroll by an unreachable BMC: %q (detail %v, aria-describedby %q)", plain, detailThere, describedBy)
	}
	shot(t, br, "defect6-enroll-bmc")
}

// TestLayoutInChromium (defect 5) measures the pages at a desktop, a tablet and a phone: the
// login logo has its size, no table spills out of its box or the page, the phone header is
// compact, and audit details read as key: value.
func TestLayoutInChromium(t *testing.T) {
	s, ms := defectSite(t)
	br, cancel := browser(t)
	defer cancel()
	// The width is measured against the screen's, not innerWidth: a phone's layout viewport
	// grows to fit content that overflows, which would hide the overflow.
	measure := `((screenWidth) => {
		const spills = [];
		document.querySelectorAll("table").forEach(t => {
			const panel = t.closest(".panel") || document.body, pr = panel.getBoundingClientRect();
			const box = t.closest(".table-wrap") || t, br = box.getBoundingClientRect();
			if (br.right > pr.right + 1 || br.left < pr.left - 1 || (!t.closest(".table-wrap") && t.scrollWidth > panel.clientWidth + 1))
				spills.push((t.className || "table") + " in " + (panel.id || panel.className) + ": " + Math.round(br.right) + " > " + Math.round(pr.right));
		});
		const h = document.querySelector("header.top");
		return {header: h ? Math.round(h.getBoundingClientRect().height) : 0,
			overflow: document.documentElement.scrollWidth - screenWidth, spills: spills};
	})`
	type result struct {
		Header   int      `json:"header"`
		Overflow int      `json:"overflow"`
		Spills   []string `json:"spills"`
	}
	sizes := []struct {
		name          string
		w, h          int64
		mobile        bool
		maxHeader     int
		auditDetailOK bool
	}{{"desktop", 1366, 768, false, 70, true}, {"tablet", 1024, 768, false, 70, true}, {"phone", 390, 844, true, 110, true}}
	for i, sz := range sizes {
		opts := []chromedp.EmulateViewportOption{chromedp.EmulateScale(1)}
		if sz.mobile {
			opts = append(opts, chromedp.EmulateMobile)
		}
		if err := chromedp.Run(br, chromedp.EmulateViewport(sz.w, sz.h, opts...)); err != nil {
			t.Fatal(err)
		}
		if i == 0 || sz.mobile {
			// The login page's logo: an icon, not a dot.
			var logo float64
			if err := chromedp.Run(br,
				chromedp.Navigate(s.srv.URL+"/login"),
				chromedp.WaitVisible(`.login h1 svg`, chromedp.ByQuery),
				chromedp.Evaluate(`document.querySelector(".login h1 svg").getBoundingClientRect().width`, &logo),
			); err != nil {
				t.Fatal(err)
			}
			if logo < 20 {
				t.Errorf("%s: the login logo is %.0f px wide (a dot)", sz.name, logo)
			}
			shot(t, br, "defect5-"+sz.name+"-login")
			if i == 0 {
				login(t, br, s.srv.URL, "tom", "tech-pass-01")
			}
		}
		for _, p := range []struct{ name, path string }{{"machines", "/machines"}, {"releases", "/releases"}, {"certificates", "/certificates"},
			{"audit", "/audit"}, {"machine", "/machines/" + ms["press-01"].ID}} {
			var r result
			if err := chromedp.Run(br,
				chromedp.Navigate(s.srv.URL+p.path),
				waitJS(`document.readyState === "complete" && !!document.querySelector("header.top")`),
				chromedp.Evaluate(fmt.Sprintf("%s(%d)", measure, sz.w), &r),
			); err != nil {
				t.Fatal(err)
			}
			shot(t, br, "defect5-"+sz.name+"-"+p.name)
			if r.Overflow > 0 || len(r.Spills) > 0 {
				t.Errorf("%s %s: page wider than the screen by %d px; tables out of their box: %v", sz.name, p.name, r.Overflow, r.Spills)
			}
			if r.Header > sz.maxHeader {
				t.Errorf("%s %s: header %d px high, want at most %d", sz.name, p.name, r.Header, sz.maxHeader)
			}
			if p.name == "audit" {
				var details string
				if err := chromedp.Run(br, chromedp.Evaluate(`[...document.querySelectorAll("table.audit tbody td[data-label=Details]")].map(td => td.textContent).join("\n")`, &details)); err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(details, "reason: superseded by 2026.12.08") || strings.Contains(details, `{"`) {
					t.Errorf("%s: audit details not as key: value:\n%.600s", sz.name, details)
				}
			}
		}
	}
}
