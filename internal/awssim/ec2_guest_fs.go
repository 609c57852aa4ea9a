package awssim

import (
	"context"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"mvdan.cc/sh/v3/interp"
)

// guestFS is an instance's file system, in memory: what the guest's shell
// opens, stats and lists (through the interpreter's handlers) and what its
// commands change. It starts with the usual directories of a Linux
// instance, /etc/os-release and /etc/hostname; /dev has the devices a
// script writes to (null, console, tty, kmsg, stdin, stdout, stderr). Nothing reaches the
// host's files. Everything runs as root: permission bits are kept (chmod,
// test -x) but only the execute bits are checked.
type guestFS struct {
	g     *guest
	mu    sync.Mutex
	nodes map[string]*gnode // by clean absolute path
}

type gnode struct {
	dir  bool
	data []byte
	mode fs.FileMode // permission bits (and fs.ModeSticky)
	mod  time.Time
}

// guestDirs are the directories every guest starts with.
var guestDirs = []string{
	"/", "/bin", "/boot", "/dev", "/etc", "/etc/systemd", "/etc/systemd/system", "/etc/sysconfig",
	"/home", "/home/ec2-user", "/lib", "/lib64", "/mnt", "/opt", "/proc", "/root", "/run", "/sbin",
	"/srv", "/sys", "/tmp", "/usr", "/usr/bin", "/usr/lib", "/usr/libexec", "/usr/local",
	"/usr/local/bin", "/usr/local/lib", "/usr/local/sbin", "/usr/sbin", "/usr/share", "/var",
	"/var/cache", "/var/lib", "/var/lib/cloud", "/var/lib/cloud/instance",
	"/var/lib/cloud/instance/scripts", "/var/log", "/var/run", "/var/spool", "/var/tmp",
}

const osRelease = `NAME="Amazon Linux"
VERSION="2023"
ID="amzn"
ID_LIKE="fedora"
VERSION_ID="2023"
PLATFORM_ID="platform:al2023"
PRETTY_NAME="Amazon Linux 2023"
HOME_URL="https://aws.amazon.com/linux/amazon-linux-2023/"
`

func newGuestFS(g *guest) *guestFS {
	f := &guestFS{g: g, nodes: map[string]*gnode{}}
	for _, d := range guestDirs {
		mode := fs.FileMode(0o755)
		if d == "/tmp" || d == "/var/tmp" {
			mode = 0o777 | fs.ModeSticky
		}
		f.nodes[d] = &gnode{dir: true, mode: mode, mod: g.now}
	}
	f.put("/etc/os-release", []byte(osRelease), 0o644)
	f.put("/etc/hostname", []byte(g.host.hostname+"\n"), 0o644)
	return f
}

// put writes a regular file (its directory exists).
func (f *guestFS) put(p string, data []byte, mode fs.FileMode) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nodes[p] = &gnode{data: data, mode: mode, mod: f.g.clock()}
}

// abs makes p absolute against the shell's directory and cleans it.
func abs(dir, p string) string {
	if !path.IsAbs(p) {
		p = path.Join(dir, p)
	}
	return path.Clean(p)
}

func pathErr(op, p string, err error) error { return &os.PathError{Op: op, Path: p, Err: err} }

// device is what a path under /dev opens, or nil for a path that is not
// a device the guest has.
func device(hc interp.HandlerContext, g *guest, p string) io.ReadWriteCloser {
	switch p {
	case "/dev/null":
		return nopRWC{r: strings.NewReader(""), w: io.Discard}
	case "/dev/console", "/dev/tty", "/dev/ttyS0", "/dev/kmsg":
		return nopRWC{r: strings.NewReader(""), w: g.console()}
	case "/dev/stdout", "/dev/fd/1":
		return nopRWC{r: strings.NewReader(""), w: hc.Stdout}
	case "/dev/stderr", "/dev/fd/2":
		return nopRWC{r: strings.NewReader(""), w: hc.Stderr}
	case "/dev/stdin", "/dev/fd/0":
		return nopRWC{r: stdinOf(hc), w: io.Discard}
	}
	return nil
}

type nopRWC struct {
	r io.Reader
	w io.Writer
}

func (d nopRWC) Read(p []byte) (int, error)  { return d.r.Read(p) }
func (d nopRWC) Write(p []byte) (int, error) { return d.w.Write(p) }
func (d nopRWC) Close() error                { return nil }

// open is the interpreter's OpenHandler: redirections, here-documents
// written by cat, "source" and "$(< FILE)".
func (f *guestFS) open(ctx context.Context, p string, flag int, perm os.FileMode) (io.ReadWriteCloser, error) {
	hc := interp.HandlerCtx(ctx)
	p = abs(hc.Dir, p)
	if d := device(hc, f.g, p); d != nil {
		return d, nil
	}
	return f.openFile(p, flag, perm)
}

func (f *guestFS) openFile(p string, flag int, perm os.FileMode) (*gfile, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	write := flag&(os.O_WRONLY|os.O_RDWR) != 0
	n := f.nodes[p]
	switch {
	case n == nil && flag&os.O_CREATE == 0:
		return nil, pathErr("open", p, syscall.ENOENT)
	case n == nil:
		if err := f.parentLocked("open", p); err != nil {
			return nil, err
		}
		n = &gnode{mode: perm.Perm() &^ 0o022, mod: f.g.clock()}
		if n.mode == 0 {
			n.mode = 0o644
		}
		f.nodes[p] = n
	case n.dir:
		return nil, pathErr("open", p, syscall.EISDIR)
	case flag&os.O_CREATE != 0 && flag&os.O_EXCL != 0:
		return nil, pathErr("open", p, syscall.EEXIST)
	}
	if write && flag&os.O_TRUNC != 0 {
		n.data = nil
		n.mod = f.g.clock()
	}
	return &gfile{fs: f, n: n, appendOnly: flag&os.O_APPEND != 0}, nil
}

// parentLocked checks that p's directory exists; f.mu is held.
func (f *guestFS) parentLocked(op, p string) error {
	parent := f.nodes[path.Dir(p)]
	switch {
	case parent == nil:
		return pathErr(op, p, syscall.ENOENT)
	case !parent.dir:
		return pathErr(op, p, syscall.ENOTDIR)
	}
	return nil
}

// gfile is an open regular file of the guest.
type gfile struct {
	fs         *guestFS
	n          *gnode
	off        int
	appendOnly bool
}

func (h *gfile) Read(p []byte) (int, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if h.off >= len(h.n.data) {
		return 0, io.EOF
	}
	k := copy(p, h.n.data[h.off:])
	h.off += k
	return k, nil
}

func (h *gfile) Write(p []byte) (int, error) {
	now := h.fs.g.clock()
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if h.appendOnly {
		h.off = len(h.n.data)
	}
	if end := h.off + len(p); end > len(h.n.data) {
		h.n.data = append(h.n.data, make([]byte, end-len(h.n.data))...)
	}
	copy(h.n.data[h.off:], p)
	h.off += len(p)
	h.n.mod = now
	return len(p), nil
}

func (h *gfile) Close() error { return nil }

// ginfo is a guest file's fs.FileInfo.
type ginfo struct {
	name string
	size int64
	mode fs.FileMode
	mod  time.Time
}

func (i ginfo) Name() string       { return i.name }
func (i ginfo) Size() int64        { return i.size }
func (i ginfo) Mode() fs.FileMode  { return i.mode }
func (i ginfo) ModTime() time.Time { return i.mod }
func (i ginfo) IsDir() bool        { return i.mode.IsDir() }
func (i ginfo) Sys() any           { return nil }

func (n *gnode) info(p string) ginfo {
	mode := n.mode
	if n.dir {
		mode |= fs.ModeDir
	}
	return ginfo{name: path.Base(p), size: int64(len(n.data)), mode: mode, mod: n.mod}
}

// lookup returns the node at p (absolute, clean) and its info.
func (f *guestFS) lookup(p string) (ginfo, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.nodes[p]
	if n == nil {
		return ginfo{}, false
	}
	return n.info(p), true
}

// stat is the interpreter's StatHandler ([ -f ], [ -d ], [ -s ], cd, ...).
func (f *guestFS) stat(ctx context.Context, name string, _ bool) (fs.FileInfo, error) {
	hc := interp.HandlerCtx(ctx)
	p := abs(hc.Dir, name)
	if device(hc, f.g, p) != nil {
		return ginfo{name: path.Base(p), mode: fs.ModeDevice | fs.ModeCharDevice | 0o666}, nil
	}
	if i, ok := f.lookup(p); ok {
		return i, nil
	}
	return nil, pathErr("stat", p, syscall.ENOENT)
}

// readDir is the interpreter's ReadDirHandler2 (globs such as *.conf).
func (f *guestFS) readDir(ctx context.Context, name string) ([]fs.DirEntry, error) {
	p := abs(interp.HandlerCtx(ctx).Dir, name)
	infos, err := f.list(p)
	if err != nil {
		return nil, err
	}
	out := make([]fs.DirEntry, len(infos))
	for i, in := range infos {
		out[i] = fs.FileInfoToDirEntry(in)
	}
	return out, nil
}

// list returns the entries of directory p, sorted by name.
func (f *guestFS) list(p string) ([]ginfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.nodes[p]
	switch {
	case n == nil:
		return nil, pathErr("open", p, syscall.ENOENT)
	case !n.dir:
		return nil, pathErr("open", p, syscall.ENOTDIR)
	}
	var out []ginfo
	for q, c := range f.nodes {
		if q != "/" && path.Dir(q) == p {
			out = append(out, c.info(q))
		}
	}
	slices.SortFunc(out, func(a, b ginfo) int { return strings.Compare(a.name, b.name) })
	return out, nil
}

// access is the interpreter's AccessHandler (test -r/-w/-x, cd): root may
// read and write anything, and execute what has an execute bit.
func (f *guestFS) access(ctx context.Context, p string, mode interp.AccessMode) error {
	hc := interp.HandlerCtx(ctx)
	p = abs(hc.Dir, p)
	if device(hc, f.g, p) != nil {
		return nil
	}
	i, ok := f.lookup(p)
	if !ok {
		return pathErr("access", p, syscall.ENOENT)
	}
	if mode&interp.AccessExec != 0 && !i.IsDir() && i.mode&0o111 == 0 {
		return pathErr("access", p, syscall.EACCES)
	}
	return nil
}

// read returns a regular file's contents.
func (f *guestFS) read(p string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.nodes[p]
	switch {
	case n == nil:
		return nil, pathErr("open", p, syscall.ENOENT)
	case n.dir:
		return nil, pathErr("read", p, syscall.EISDIR)
	}
	return slices.Clone(n.data), nil
}

// mkdir makes directory p; with parents, its missing parents too and no
// error when it exists.
func (f *guestFS) mkdir(p string, parents bool, mode fs.FileMode) error {
	now := f.g.clock()
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := f.nodes[p]; n != nil {
		if parents && n.dir {
			return nil
		}
		return pathErr("mkdir", p, syscall.EEXIST)
	}
	if parents && p != "/" {
		if n := f.nodes[path.Dir(p)]; n == nil {
			f.mu.Unlock()
			err := f.mkdir(path.Dir(p), true, 0o755)
			f.mu.Lock()
			if err != nil {
				return err
			}
		}
	}
	if err := f.parentLocked("mkdir", p); err != nil {
		return err
	}
	f.nodes[p] = &gnode{dir: true, mode: mode, mod: now}
	return nil
}

// remove deletes p; a directory only when recursive (with everything in it).
func (f *guestFS) remove(p string, recursive bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.nodes[p]
	switch {
	case n == nil:
		return pathErr("remove", p, syscall.ENOENT)
	case p == "/":
		return pathErr("remove", p, syscall.EPERM)
	case n.dir && !recursive:
		return pathErr("remove", p, syscall.EISDIR)
	}
	for q := range f.nodes {
		if q == p || strings.HasPrefix(q, p+"/") {
			delete(f.nodes, q)
		}
	}
	return nil
}

// rmdir deletes an empty directory.
func (f *guestFS) rmdir(p string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.nodes[p]
	switch {
	case n == nil:
		return pathErr("rmdir", p, syscall.ENOENT)
	case !n.dir:
		return pathErr("rmdir", p, syscall.ENOTDIR)
	}
	for q := range f.nodes {
		if strings.HasPrefix(q, p+"/") {
			return pathErr("rmdir", p, syscall.ENOTEMPTY)
		}
	}
	delete(f.nodes, p)
	return nil
}

// copyTree copies src (a file, or with recursive a directory) to dst,
// replacing a file there; with move the source goes away.
func (f *guestFS) copyTree(src, dst string, recursive, move bool) error {
	now := f.g.clock()
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.nodes[src]
	switch {
	case n == nil:
		return pathErr("stat", src, syscall.ENOENT)
	case n.dir && !recursive:
		return pathErr("copy", src, syscall.EISDIR)
	case dst == src || strings.HasPrefix(dst, src+"/"):
		return pathErr("copy", dst, syscall.EINVAL)
	}
	if d := f.nodes[dst]; d != nil && d.dir != n.dir {
		if d.dir {
			return pathErr("copy", dst, syscall.EISDIR)
		}
		return pathErr("copy", dst, syscall.ENOTDIR)
	}
	if err := f.parentLocked("copy", dst); err != nil {
		return err
	}
	moved := map[string]*gnode{}
	for q, c := range f.nodes {
		if q == src || strings.HasPrefix(q, src+"/") {
			c2 := *c
			c2.data = slices.Clone(c.data)
			if !move {
				c2.mod = now
			}
			moved[dst+strings.TrimPrefix(q, src)] = &c2
			if move {
				delete(f.nodes, q)
			}
		}
	}
	for q, c := range moved {
		f.nodes[q] = c
	}
	return nil
}

// chmod sets p's permission bits with fn.
func (f *guestFS) chmod(p string, fn func(fs.FileMode) fs.FileMode) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.nodes[p]
	if n == nil {
		return pathErr("chmod", p, syscall.ENOENT)
	}
	n.mode = fn(n.mode)
	return nil
}

// touch makes p an empty file when it does not exist, and sets its time.
func (f *guestFS) touch(p string) error {
	h, err := f.openFile(p, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	now := f.g.clock()
	f.mu.Lock()
	h.n.mod = now
	f.mu.Unlock()
	return nil
}
