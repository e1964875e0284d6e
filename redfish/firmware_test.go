package redfish_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"slate/redfish"
	"slate/redfish/redfishtest"
)

const newBMC = "SLATEFW component=BMC version=1.46.0\n" + "payload"

func TestFirmwareInventory(t *testing.T) {
	s := rackmount(t, redfishtest.Options{})
	c := connect(t, s, nil)
	fw, err := c.Firmware(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, f := range fw {
		got[f.ID] = f.Version
		if f.ID == "BMC" && !f.Updateable {
			t.Error("BMC firmware not updateable")
		}
	}
	if got["BMC"] != "1.45.455b66-rev4" || got["BIOS"] != "P79 v1.45" {
		t.Fatalf("inventory %v", got)
	}
}

func TestFirmwareSimpleUpdateFollowsTask(t *testing.T) {
	img := imageServer(t, map[string]string{"/fw/bmc-1.46.bin": newBMC})
	s := rackmount(t, redfishtest.Options{TaskPolls: 3})
	c := connect(t, s, nil)
	ctx := context.Background()
	base := redfish.FirmwareBaseline{Name: "2026-11", Components: []redfish.FirmwareTarget{
		{Component: "BMC", Version: "1.46.0", ImageURI: img.URL + "/fw/bmc-1.46.bin"},
		{Component: "BIOS", Version: "P79 v1.45"},
	}}
	plan, err := c.PlanFirmware(ctx, base)
	if err != nil || len(plan) != 1 || plan[0].Component != "BMC" || plan[0].Current != "1.45.455b66-rev4" {
		t.Fatalf("plan %+v %v", plan, err)
	}
	res, err := c.UpdateFirmware(ctx, redfish.FirmwareUpdate{Component: "BMC", Version: "1.46.0", ImageURI: plan[0].ImageURI})
	if err != nil {
		t.Fatal(err)
	}
	if res.State != redfish.FirmwareUpdated || res.Before != "1.45.455b66-rev4" || res.After != "1.46.0" || res.Task == "" {
		t.Fatalf("result %+v", res)
	}
	if polls := len(bodies(s, "GET", res.Task)); polls < 3 {
		t.Fatalf("task polled %d times: the client did not follow it to the end", polls)
	}
	if plan, _ := c.PlanFirmware(ctx, base); len(plan) != 0 {
		t.Fatalf("baseline not met after update: %+v", plan)
	}
	inv, _ := c.Inventory(ctx)
	if inv.BMCFirmware != "1.46.0" {
		t.Fatalf("manager firmware %q", inv.BMCFirmware)
	}
	// already at the version: nothing sent
	res, err = c.UpdateFirmware(ctx, redfish.FirmwareUpdate{Component: "BMC", Version: "1.46.0", ImageURI: plan0(base)})
	if err != nil || res.State != redfish.FirmwareCurrent || len(bodies(s, "POST", "SimpleUpdate")) != 1 {
		t.Fatalf("re-update %+v %v", res, err)
	}
}

func plan0(b redfish.FirmwareBaseline) string { return b.Components[0].ImageURI }

// A task monitor in Location (and no Task body) is followed; its reply names the task.
func TestFirmwareTaskMonitor(t *testing.T) {
	img := imageServer(t, map[string]string{"/fw/bmc.bin": newBMC})
	s := rackmount(t, redfishtest.Options{TaskMonitor: true, TaskPolls: 2})
	c := connect(t, s, nil)
	res, err := c.UpdateFirmware(context.Background(), redfish.FirmwareUpdate{Component: "BMC", Version: "1.46.0", ImageURI: img.URL + "/fw/bmc.bin"})
	if err != nil || res.State != redfish.FirmwareUpdated || !strings.Contains(res.Task, "/TaskMonitors/") {
		t.Fatalf("%+v %v", res, err)
	}
}

func TestFirmwareTaskFailure(t *testing.T) {
	img := imageServer(t, map[string]string{"/fw/bad.bin": "garbage"})
	s := rackmount(t, redfishtest.Options{})
	c := connect(t, s, nil)
	res, err := c.UpdateFirmware(context.Background(), redfish.FirmwareUpdate{Component: "BMC", Version: "1.46.0", ImageURI: img.URL + "/fw/bad.bin"})
	requireBMCError(t, err, s.URL, "update firmware")
	if !errors.Is(err, redfish.ErrNotApplied) || res.State != "failed" || !strings.Contains(err.Error(), "not a firmware image") {
		t.Fatalf("want the task's failure, got %+v %v", res, err)
	}
}

func TestFirmwareTaskTimeout(t *testing.T) {
	img := imageServer(t, map[string]string{"/fw/bmc.bin": newBMC})
	s := rackmount(t, redfishtest.Options{TaskPolls: 1000})
	c := connect(t, s, nil)
	_, err := c.UpdateFirmware(context.Background(), redfish.FirmwareUpdate{Component: "BMC", Version: "1.46.0", ImageURI: img.URL + "/fw/bmc.bin"})
	requireBMCError(t, err, s.URL, "update firmware")
	if !errors.Is(err, redfish.ErrTimeout) {
		t.Fatalf("want a bounded wait, got %v", err)
	}
}

func TestFirmwareMultipartPushHasContentLength(t *testing.T) {
	s := rackmount(t, redfishtest.Options{MultipartPush: true})
	c := connect(t, s, nil)
	image := func() (io.ReadCloser, int64, error) {
		return io.NopCloser(bytes.NewReader([]byte(newBMC))), int64(len(newBMC)), nil
	}
	res, err := c.UpdateFirmware(context.Background(), redfish.FirmwareUpdate{Component: "BMC", Version: "1.46.0", Image: image, Filename: "bmc.bin"})
	if err != nil || res.State != redfish.FirmwareUpdated {
		t.Fatalf("%+v %v", res, err)
	}
	found := false
	for _, r := range s.Requests() {
		if r.Path == "/redfish/v1/UpdateService/update-multipart" {
			found = true
			if r.Chunked || r.ContentLength != int64(len(r.Body)) {
				t.Fatalf("push sent chunked=%t Content-Length=%d for %d bytes", r.Chunked, r.ContentLength, len(r.Body))
			}
		}
	}
	if !found {
		t.Fatal("no multipart push")
	}
}

// iDRAC deletes the Redfish task once its job queue takes over: the client follows the job.
func TestQuirkDellTaskBecomesJob(t *testing.T) {
	img := imageServer(t, map[string]string{"/fw/bmc.bin": newBMC})
	for _, tc := range []struct {
		profile redfish.Vendor
		ok      bool
	}{{redfish.Dell{}, true}, {redfish.Generic{}, false}} {
		t.Run(tc.profile.Name(), func(t *testing.T) {
			s := rackmount(t, redfishtest.Options{Vendor: redfishtest.Dell, TaskPolls: 3})
			c := connect(t, s, tc.profile)
			res, err := c.UpdateFirmware(context.Background(), redfish.FirmwareUpdate{Component: "BMC", Version: "1.46.0", ImageURI: img.URL + "/fw/bmc.bin"})
			if !tc.ok {
				requireBMCError(t, err, s.URL, "update firmware")
				return
			}
			if err != nil || res.After != "1.46.0" {
				t.Fatalf("%+v %v", res, err)
			}
			if len(bodies(s, "GET", "/Managers/iDRAC.Embedded.1/Jobs/"+strings.TrimPrefix(res.Task, "/redfish/v1/TaskService/Tasks/"))) == 0 {
				t.Fatal("the job was not followed")
			}
		})
	}
}

func TestFirmwareNoWayToDeliver(t *testing.T) {
	s := rackmount(t, redfishtest.Options{})
	c := connect(t, s, nil)
	_, err := c.UpdateFirmware(context.Background(), redfish.FirmwareUpdate{Component: "BMC", Version: "2", Image: redfish.FileImage("/nonexistent")})
	requireBMCError(t, err, s.URL, "update firmware")
	if !errors.Is(err, redfish.ErrUnsupported) {
		t.Fatalf("got %v", err)
	}
}
