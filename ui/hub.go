package ui

import "sync"

// Hub fans machine-change notifications out to live pages (server-sent events). Slow
// subscribers lose events rather than block the writer: a page only needs to know
// "something changed" to refresh.
type Hub struct {
	mu   sync.Mutex
	subs map[chan string]struct{}
}

// NewHub returns an empty hub.
func NewHub() *Hub { return &Hub{subs: map[chan string]struct{}{}} }

// MachineChanged implements lifecycle.Notifier.
func (h *Hub) MachineChanged(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- id:
		default:
		}
	}
}

// Subscribe returns a channel of changed machine ids and a cancel function.
func (h *Hub) Subscribe() (<-chan string, func()) {
	ch := make(chan string, 64)
	h.mu.Lock()
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(h.subs, ch)
		h.mu.Unlock()
	}
}

// TaskChanged implements the agent API's notifier: a task's progress refreshes its machine.
func (h *Hub) TaskChanged(machineID, taskID string) { h.MachineChanged(machineID) }
