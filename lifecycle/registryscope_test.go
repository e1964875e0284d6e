package lifecycle

import (
	"encoding/json"
	"strings"
	"testing"

	"slate/agent/agentproto"
	"slate/inventory"
)

// TestRegistryScopeFollowsTheRunningTask: a deploy environment's token may pull the image its
// running install task names (disk image or bootc), nothing for other tasks, nothing for a
// node token (even while an install runs), and nothing for a task whose params name no image.
func TestRegistryScopeFollowsTheRunningTask(t *testing.T) {
	d := "sha256:" + strings.Repeat("cd", 32)
	layer := "sha256:" + strings.Repeat("ab", 32)
	task := func(kind string, params map[string]any) inventory.Task {
		b, _ := json.Marshal(params)
		return inventory.Task{ID: "t-" + kind, Kind: kind, Params: b, State: inventory.TaskRunning}
	}
	disk := task(string(agentproto.KindInstallImage), map[string]any{"blob_url": "http://10.99.0.1:8080/v2/plant/disk/blobs/" + layer, "digest": layer, "image_digest": d})
	bootc := task(string(agentproto.KindInstallBootc), map[string]any{"image": "10.99.0.1:8080/plant/hmi", "digest": d, "target_imgref": "plant/hmi:1"})
	inspect := task("inspect", map[string]any{})
	for _, c := range []struct {
		name    string
		kind    string
		running []inventory.Task
		want    string // images, comma-separated
		why     string
	}{
		{"disk image install", inventory.TokenBoot, []inventory.Task{disk}, "plant/disk@" + d, ""},
		{"bootc install", inventory.TokenBoot, []inventory.Task{inspect, bootc}, "plant/hmi@" + d, ""},
		{"no install running", inventory.TokenBoot, []inventory.Task{inspect}, "", "no install task"},
		{"nothing running", inventory.TokenBoot, nil, "", "no install task"},
		{"node token during an install", inventory.TokenNode, []inventory.Task{bootc}, "", "node token pulls nothing"},
		{"install without a manifest digest", inventory.TokenBoot, []inventory.Task{task(string(agentproto.KindInstallImage), map[string]any{"blob_url": "http://x/v2/plant/disk/blobs/" + layer})}, "", "names no image"},
		{"bootc image without a repository", inventory.TokenBoot, []inventory.Task{task(string(agentproto.KindInstallBootc), map[string]any{"image": "plant", "digest": d})}, "", "names no image"},
	} {
		got, why := RegistryScope(c.kind, c.running)
		if strings.Join(got, ",") != c.want || (c.why == "") != (why == "") || !strings.Contains(why, c.why) {
			t.Errorf("%s: %v %q, want %q %q", c.name, got, why, c.want, c.why)
		}
	}
}
