package dhcp

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests      *prometheus.CounterVec
	replies       *prometheus.CounterVec
	drops         *prometheus.CounterVec
	exhausted     *prometheus.CounterVec
	rogues        *prometheus.GaugeVec
	commitBatch   prometheus.Histogram
	commitSeconds prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slate_dhcp_requests_total", Help: "DHCP requests received, by interface and message type.",
		}, []string{"iface", "type"}),
		replies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slate_dhcp_replies_total", Help: "DHCP replies sent (OFFER, ACK, NAK), by interface and type.",
		}, []string{"iface", "type"}),
		drops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slate_dhcp_drops_total", Help: "DHCP packets not answered, by interface and reason.",
		}, []string{"iface", "reason"}),
		exhausted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slate_dhcp_pool_exhausted_total", Help: "DISCOVERs refused because the pool had no free address.",
		}, []string{"iface", "pool"}),
		rogues: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "slate_dhcp_rogue_servers", Help: "Other DHCP servers seen by the start-up probe on an authoritative interface.",
		}, []string{"iface"}),
		commitBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "slate_dhcp_lease_commit_batch_size", Help: "Leases written per group commit.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "slate_dhcp_lease_commit_seconds", Help: "Duration of one lease group commit.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 14),
		}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.replies, m.drops, m.exhausted, m.rogues, m.commitBatch, m.commitSeconds} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// watchPool exports a pool's utilisation, computed when scraped.
func (m *metrics) watchPool(reg prometheus.Registerer, iface string, p *pool, now func() time.Time) error {
	labels := prometheus.Labels{"iface": iface, "pool": p.cfg.label}
	if err := reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "slate_dhcp_pool_utilisation", Help: "Fraction of the pool bound, offered or quarantined.", ConstLabels: labels,
	}, func() float64 { return p.status(now()).Utilisation })); err != nil {
		return err
	}
	return reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "slate_dhcp_pool_size", Help: "Addresses in the pool.", ConstLabels: labels,
	}, func() float64 { return float64(p.cfg.last - p.cfg.first + 1) }))
}
