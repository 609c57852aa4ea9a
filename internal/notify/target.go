package notify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
)

// ErrLinkLocal is a target in the link-local range, refused.
var ErrLinkLocal = errors.New("a link-local address (169.254.0.0/16, fe80::/10) is refused: instance metadata answers there")

// CheckURL checks a target URL when a project is applied: http or https,
// with a host, and not link-local, whether written as an address or a
// name that resolves to one now (resolve may be nil: names are then
// checked at delivery only). Loopback and private addresses are allowed.
func CheckURL(ctx context.Context, raw string, resolve func(ctx context.Context, host string) ([]netip.Addr, error)) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("not a URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q: want an http or https URL", raw)
	}
	host := u.Hostname()
	if host == "" {
		return fmt.Errorf("%q: no host", raw)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return checkAddr(a)
	}
	if resolve == nil {
		return nil
	}
	addrs, err := resolve(ctx, host)
	if err != nil {
		return nil // it may resolve where the server runs; the dialer checks
	}
	for _, a := range addrs {
		if err := checkAddr(a); err != nil {
			return fmt.Errorf("%s resolves to %s: %w", host, a, err)
		}
	}
	return nil
}

func checkAddr(a netip.Addr) error {
	a = a.Unmap()
	if a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() {
		return ErrLinkLocal
	}
	return nil
}

// guardDial is a net.Dialer Control that refuses a connection to a
// link-local address: it sees the address actually dialled, after DNS.
func guardDial(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("dial %s: %w", address, err)
	}
	if err := checkAddr(ap.Addr()); err != nil {
		return fmt.Errorf("dial %s: %w", address, err)
	}
	return nil
}

// isSlack reports whether u is a Slack incoming webhook: on
// hooks.slack.com, or a path of Slack's shape /services/T…/B…/SECRET
// (Slack-compatible receivers and stand-ins).
func isSlack(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	if strings.EqualFold(u.Hostname(), "hooks.slack.com") {
		return true
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	return len(parts) == 4 && parts[0] == "services" &&
		strings.HasPrefix(parts[1], "T") && strings.HasPrefix(parts[2], "B")
}

// Resolver is net.DefaultResolver's LookupNetIP for CheckURL.
func Resolver(ctx context.Context, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}
