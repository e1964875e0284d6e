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

// js evaluates expr (errors are the test's: a missing element reads as "" or false, so an
// old page fails the check that names the defect instead of timing out).
func js(t *testing.T, ctx context.Context, expr string, res any) {
	t.Helper()
	if err := chromedp.Run(ctx, chromedp.Evaluate(expr, res)); err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
}

// textOf is the text of the first element matching sel ("" when none).
func textOf(sel string) string {
	return fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ""`, sel)
}

// attrOf is an attribute of the first element matching sel ("" when none).
func attrOf(sel, attr string) string {
	return fmt.Sprintf(`((document.querySelector(%q) || {getAttribute: () => ""}).getAttribute(%q)) || ""`, sel, attr)
}

// open navigates and waits for the page.
func open(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	if err := chromedp.Run(ctx, chromedp.Navigate(url), waitJS(`document.readyState === "complete" && !!document.querySelector("h1")`)); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
}

// TestDefectsInChromium covers issue 21's defects 1-4 and 6 in a browser: facts, the live
// "Now:" and skipped journey steps, refusals in red tied to their field, the retired
// machine, BMC failures in plain language (defect 5, layout: TestLayoutInChromium).
func TestDefectsInChromium(t *testing.T) {
	s, ms := defectSite(t)
	ctx := context.Background()
	br, cancel := browser(t)
	defer cancel()
	login(t, br, s.srv.URL, "tom", "tech-pass-01")
	page := func(name string) string { return s.srv.URL + "/machines/" + ms[name].ID }

	t.Run("1-facts", func(t *testing.T) {
		// A summary, the raw JSON behind a closed toggle.
		open(t, br, page("press-01"))
		var facts string
		var rawOpen, rawThere bool
		js(t, br, textOf("#facts"), &facts)
		js(t, br, `!!document.querySelector("#facts details.raw")`, &rawThere)
		js(t, br, `!!document.querySelector("#facts details.raw[open]")`, &rawOpen)
		for _, want := range []string{"Intel Xeon E-2278GE · 1 socket, 8 cores, 16 threads", "32.0 GiB", "Samsung PM983", "S4GNNX0M", "894.3 GiB",
			"52:54:00:00:10:01", "up", "UEFI · Secure Boot enabled", "TPM 2.0", "Raw facts"} {
			if !strings.Contains(facts, want) {
				t.Errorf("facts panel lacks %q:\n%s", want, facts)
			}
		}
		if strings.Contains(facts, "Not inspected yet") || !rawThere || rawOpen {
			t.Errorf("facts panel: raw toggle present %v, open %v:\n%s", rawThere, rawOpen, facts)
		}
		shot(t, br, "defect1-facts")
	})

	t.Run("2-journey-skipped", func(t *testing.T) {
		// press-02 was enrolled by hand and never configuring.
		open(t, br, page("press-02"))
		var skipped, done []string
		js(t, br, `[...document.querySelectorAll(".journey li.skipped")].map(l => l.textContent)`, &skipped)
		js(t, br, `[...document.querySelectorAll(".journey li.done")].map(l => l.textContent)`, &done)
		if strings.Join(skipped, "|") != "discovered skipped|configuring skipped" || len(done) != 4 {
			t.Errorf("journey of press-02: skipped %q, done %q", skipped, done)
		}
		shot(t, br, "defect2-journey")
	})

	t.Run("2-now-live", func(t *testing.T) {
		// The explanation the reconciler gives after a transition reaches the open page
		// without a reload.
		if err := s.a.Reconciler.ReconcileOnce(ctx); err != nil {
			t.Fatal(err)
		}
		open(t, br, page("hmi-01"))
		var now string
		js(t, br, textOf(".why"), &now)
		if !strings.Contains(now, "technician to power it on") {
			t.Fatalf("Now: %q", now)
		}
		if _, err := s.a.Lifecycle.Fail(ctx, ms["hmi-01"].ID, "agent", "disk /dev/sda not found", ""); err != nil {
			t.Fatal(err)
		}
		lctx, lcancel := context.WithTimeout(br, 15*time.Second)
		defer lcancel()
		if err := chromedp.Run(lctx, waitJS(`!!document.querySelector("h1 .badge.s-failed")`)); err != nil {
			t.Fatalf("the page did not follow the transition: %v", err)
		}
		time.Sleep(time.Second) // the refresh for the transition is done: only the next event can change "Now:"
		if err := s.a.Reconciler.ReconcileOnce(ctx); err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Run(lctx, waitJS("("+textOf(".why")+`).includes("failed while inspecting")`)); err != nil {
			js(t, br, textOf(".why"), &now)
			t.Fatalf("\"Now:\" went stale after the reconciler explained the new state: %q (%v)", now, err)
		}
	})

	t.Run("3-refusals", func(t *testing.T) {
		// A refusal is red, on the page of the form, tied to its field.
		open(t, br, page("press-02"))
		field := `form[action$='/decommission'] input[name=confirm_name]`
		// The button waits for the right name; a browser without JavaScript can still post.
		lctx, lcancel := context.WithTimeout(br, 15*time.Second)
		defer lcancel()
		if err := chromedp.Run(lctx,
			chromedp.Evaluate(`document.querySelector("`+field+`").value = "press-2";
				document.getElementById("decom-btn").disabled = false;
				setTimeout(() => document.getElementById("decom-btn").click(), 0); true`, nil),
			waitJS(`document.readyState === "complete" && location.pathname.endsWith("/decommission") && !!document.querySelector("h1")`),
		); err != nil {
			t.Fatal(err)
		}
		var hasOK bool
		var flash, describedBy, invalid string
		js(t, br, `!!document.querySelector(".flash.ok")`, &hasOK)
		js(t, br, textOf(".flash.error"), &flash)
		js(t, br, attrOf(field, "aria-describedby"), &describedBy)
		js(t, br, attrOf(field, "aria-invalid"), &invalid)
		if hasOK || !strings.Contains(flash, "Not decommissioned: type the machine's name exactly (press-02)") || describedBy != "flash" || invalid != "true" {
			t.Errorf("refused decommission: green %v, text %q, aria-describedby %q, aria-invalid %q", hasOK, flash, describedBy, invalid)
		}
		if m, _ := s.a.Store.GetMachine(ctx, ms["press-02"].ID); m.State != lifecycle.Deployed {
			t.Fatalf("a refused decommission moved the machine to %s", m.State)
		}
		shot(t, br, "defect3-refusal")
		// ?ok= shows only Slate's codes, and a refusal code is red whatever the parameter.
		var hasErr, anyFlash bool
		open(t, br, page("press-02")+"?ok=decommission-name-mismatch")
		js(t, br, `!!document.querySelector(".flash.ok")`, &hasOK)
		js(t, br, `!!document.querySelector(".flash.error")`, &hasErr)
		if hasOK || !hasErr {
			t.Errorf("?ok=<refusal code>: green %v, red %v", hasOK, hasErr)
		}
		open(t, br, page("press-02")+"?ok=Your+machine+is+safe")
		js(t, br, `!!document.querySelector("#flash")`, &anyFlash)
		if anyFlash {
			t.Error("?ok=<any text> shows a banner")
		}
	})

	t.Run("4-retired", func(t *testing.T) {
		// No release offered, and not the erased one shown as booted.
		open(t, br, page("old-hmi"))
		var releaseForms int
		var release string
		js(t, br, `document.querySelectorAll("form[action$='/release']").length`, &releaseForms)
		js(t, br, textOf("#release-erased"), &release)
		if releaseForms != 0 || !strings.Contains(release, "none: its disks were erased") || !strings.Contains(release, "it last ran hmi@7") {
			t.Errorf("retired machine: %d release forms, release %q", releaseForms, release)
		}
		shot(t, br, "defect4-retired")
	})

	t.Run("6-bmc-plain", func(t *testing.T) {
		// Plain language first, the Go chain behind a closed <details>.
		open(t, br, page("bmc-fail"))
		var plain string
		var detailOpen, detailThere bool
		js(t, br, textOutsideDetails(`.panel .flash.error`), &plain)
		js(t, br, `!!document.querySelector(".panel .flash.error details.detail")`, &detailThere)
		js(t, br, `!!document.querySelector(".panel .flash.error details.detail[open]")`, &detailOpen)
		if !strings.Contains(plain, "BMC at 10.0.0.21 does not answer: check address, VLAN and credentials.") || strings.Contains(plain, "dial tcp") ||
			!detailThere || detailOpen {
			t.Errorf("BMC failure: %q (detail there %v, open %v)", plain, detailThere, detailOpen)
		}
		shot(t, br, "defect6-bmc-failed")
		// A real one: enrolling with a BMC address where nothing listens (loopback).
		open(t, br, s.srv.URL+"/machines/new")
		lctx, lcancel := context.WithTimeout(br, 30*time.Second)
		defer lcancel()
		if err := chromedp.Run(lctx,
			chromedp.SendKeys(`#name`, "cell-9", chromedp.ByID),
			chromedp.SendKeys(`#bmc_address`, "https://127.0.0.1:1", chromedp.ByID),
			chromedp.SendKeys(`#bmc_username`, "admin", chromedp.ByID),
			chromedp.SendKeys(`#bmc_password`, "secret", chromedp.ByID),
			chromedp.Submit(`#name`, chromedp.ByID),
			waitJS(`document.readyState === "complete" && !!document.querySelector(".flash.error")`),
		); err != nil {
			t.Fatal(err)
		}
		var describedBy string
		js(t, br, textOutsideDetails(`.flash.error`), &plain)
		js(t, br, `!!document.querySelector(".flash.error details.detail")`, &detailThere)
		js(t, br, attrOf("#bmc_address", "aria-describedby"), &describedBy)
		if !strings.Contains(plain, "BMC at 127.0.0.1:1 refuses connections") || strings.Contains(plain, "dial tcp") || !detailThere || describedBy != "flash" {
			t.Errorf("enroll by an unreachable BMC: %q (detail %v, aria-describedby %q)", plain, detailThere, describedBy)
		}
		shot(t, br, "defect6-enroll-bmc")
	})
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
