package pxe

import (
	"strings"
	"testing"
)

// FuzzScriptText checks that no lifecycle message or task can add a command to a machine's
// script: messages are flattened to one harmless echo line, unsafe tasks refuse to render.
func FuzzScriptText(f *testing.F) {
	for _, s := range []string{"retired on 2026-11-01", "${root-path} && shell", "a\nkernel http://evil/x", "#!ipxe", "x || reboot", "tab\there"} {
		f.Add(s, "inspect")
	}
	sc, err := parseScripts()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, msg, task string) {
		d := scriptData{Base: "http://10.0.0.1:8080", MAC: "52:54:00:00:00:01", MachineID: "m-1", State: "provisioning",
			Action: ActionDeploy, Task: task, Token: "sla_tok", Firmware: FirmwareUEFI, KernelArgs: "console=ttyS0", Message: consoleText(msg)}
		out, err := render(sc.machine, d)
		if err != nil {
			if safeScriptValue(task) {
				t.Fatalf("render refused a safe task %q: %v", task, err)
			}
			return
		}
		if task != "" && !safeScriptValue(task) {
			t.Fatalf("rendered an unsafe task %q", task)
		}
		wantMsg := "M"
		if d.Message == "" {
			wantMsg = ""
		}
		want, _ := render(sc.machine, scriptData{Base: d.Base, MAC: d.MAC, MachineID: d.MachineID, State: d.State,
			Action: d.Action, Task: d.Task, Token: d.Token, Firmware: d.Firmware, KernelArgs: d.KernelArgs, Message: wantMsg})
		if strings.Count(string(out), "\n") != strings.Count(string(want), "\n") {
			t.Fatalf("message %q changed the script's line count:\n%s", msg, out)
		}
		for _, ln := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(ln, "echo Slate: ") && ln != "echo Slate: M" && strings.ContainsAny(strings.TrimPrefix(ln, "echo Slate: "), "$&|#\"'\\`") {
				t.Fatalf("echo line carries an iPXE special character: %q", ln)
			}
		}
	})
}
