package lab

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// forward accepts connections on l (on the host) and pipes each to target inside the lab's
// namespace, so the UI that runs in the namespace is reachable from the host's loopback.
func forward(ctx context.Context, l net.Listener, ns, target string, log *slog.Logger) {
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					log.Warn("lab: forwarder stopped", "listen", l.Addr(), "err", err)
				}
				return
			}
			go func() {
				defer c.Close()
				dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				up, err := dialIn(dctx, ns, "tcp", target)
				cancel()
				if err != nil {
					log.Info("lab: forward target not reachable", "target", target, "err", err)
					return
				}
				defer up.Close()
				pipe(c, up)
			}()
		}
	}()
}

func pipe(a, b net.Conn) {
	var wg sync.WaitGroup
	wg.Add(2)
	cp := func(dst, src net.Conn) {
		defer wg.Done()
		io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
	}
	go cp(a, b)
	go cp(b, a)
	wg.Wait()
}
