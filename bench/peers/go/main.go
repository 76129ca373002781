// Go peer for bench/run: the bench endpoints on net/http, standard library only.
//
//	GOMAXPROCS=1 UPSTREAM=http://127.0.0.1:9000 ./go-peer -addr 127.0.0.1:8000
//	./go-peer -upstream-mode -addr 127.0.0.1:9000   (the bench's fake GitHub API)
//
// Built offline by bench/run with GO111MODULE=off GOPROXY=off. Every handler
// runs in its own goroutine, so /sleep and /sync-sleep are the same
// time.Sleep; /trap/blocking makes a raw nanosleep system call, which the Go
// runtime notices and works around by handing the processor to another thread:
// Go cannot be blocked this way, and the bench shows it.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

var upstream = os.Getenv("UPSTREAM")

var client = &http.Client{
	Timeout:   10 * time.Second,
	Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64},
}

func writeJSON(w http.ResponseWriter, status int, v interface{}) {
	b, _ := json.Marshal(v)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

func msParam(w http.ResponseWriter, s string) (int, bool) {
	ms, err := strconv.Atoi(s)
	if err != nil || ms < 0 || ms > 60000 {
		writeJSON(w, 422, map[string]string{"detail": "ms must be between 0 and 60000"})
		return 0, false
	}
	return ms, true
}

type step struct {
	Name   string `json:"name"`
	WaitMs int    `json:"wait_ms"`
	TookMs int64  `json:"took_ms"`
}

func scenario(w http.ResponseWriter) {
	t0 := time.Now()
	steps := []step{{"database", 200, 0}, {"compute", 1, 0}, {"external_api", 1000, 0}}
	var wg sync.WaitGroup
	for i := range steps {
		wg.Add(1)
		go func(s *step) {
			defer wg.Done()
			st := time.Now()
			time.Sleep(time.Duration(s.WaitMs) * time.Millisecond)
			s.TookMs = time.Since(st).Milliseconds()
		}(&steps[i])
	}
	wg.Wait()
	writeJSON(w, 200, map[string]interface{}{"steps": steps, "total_ms": time.Since(t0).Milliseconds()})
}

func getJSON(url string) (interface{}, error) {
	r, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	if r.StatusCode != 200 {
		return nil, fmt.Errorf("upstream %d", r.StatusCode)
	}
	var v interface{}
	return v, json.Unmarshal(b, &v)
}

func fetchMultiple(w http.ResponseWriter) {
	names := []string{"octocat", "torvalds"}
	out := make([]interface{}, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Add(1)
		go func(i int, n string) {
			defer wg.Done()
			out[i], errs[i] = getJSON(upstream + "/users/" + n)
		}(i, n)
	}
	wg.Wait()
	for _, e := range errs {
		if e != nil {
			writeJSON(w, 502, map[string]string{"detail": e.Error()})
			return
		}
	}
	writeJSON(w, 200, out)
}

func handler(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case r.Method != "GET":
		writeJSON(w, 405, map[string]string{"detail": "Method Not Allowed"})
	case p == "/plaintext":
		h := w.Header()
		h.Set("Content-Type", "text/plain")
		h.Set("Content-Length", "13")
		w.Write([]byte("Hello, World!"))
	case p == "/json":
		writeJSON(w, 200, map[string]string{"message": "Hello, World!"})
	case p == "/health":
		writeJSON(w, 200, map[string]string{"status": "ok"})
	case strings.HasPrefix(p, "/sleep/") || strings.HasPrefix(p, "/sync-sleep/"):
		if ms, ok := msParam(w, p[strings.LastIndexByte(p, '/')+1:]); ok {
			time.Sleep(time.Duration(ms) * time.Millisecond)
			writeJSON(w, 200, map[string]int{"slept_ms": ms})
		}
	case strings.HasPrefix(p, "/trap/blocking/"):
		if ms, ok := msParam(w, p[len("/trap/blocking/"):]); ok {
			ts := syscall.NsecToTimespec(int64(ms) * 1e6)
			for syscall.Nanosleep(&ts, &ts) != nil {
			}
			writeJSON(w, 200, map[string]int{"slept_ms": ms})
		}
	case strings.HasPrefix(p, "/cpu/"):
		n, err := strconv.ParseInt(p[len("/cpu/"):], 10, 64)
		if err != nil || n < 0 {
			writeJSON(w, 422, map[string]string{"detail": "bad n"})
			return
		}
		var s int64
		for i := int64(0); i < n; i++ {
			s += i
		}
		writeJSON(w, 200, map[string]interface{}{"source": "sync", "n": n, "result": s})
	case p == "/scenario":
		scenario(w)
	case p == "/fetch-multiple" && upstream != "":
		fetchMultiple(w)
	default:
		writeJSON(w, 404, map[string]string{"detail": "Not Found"})
	}
}

// upstreamHandler is a GitHub-like user API: GET /users/{login}[?delay_ms=N].
func upstreamHandler(w http.ResponseWriter, r *http.Request) {
	login := strings.TrimPrefix(r.URL.Path, "/users/")
	names := map[string]string{"octocat": "The Octocat", "torvalds": "Linus Torvalds",
		"gvanrossum": "Guido van Rossum"}
	name, ok := names[login]
	if !strings.HasPrefix(r.URL.Path, "/users/") || !ok {
		writeJSON(w, 404, map[string]string{"message": "Not Found"})
		return
	}
	if d, err := strconv.Atoi(r.URL.Query().Get("delay_ms")); err == nil && d > 0 && d <= 60000 {
		time.Sleep(time.Duration(d) * time.Millisecond)
	}
	writeJSON(w, 200, map[string]interface{}{
		"id": len(login) * 1000, "login": login, "name": name,
		"avatar_url": "https://avatars.example.invalid/" + login, "public_repos": 8,
	})
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8000", "listen address")
	up := flag.Bool("upstream-mode", false, "serve the fake GitHub user API instead")
	flag.Parse()
	h := http.HandlerFunc(handler)
	if *up {
		h = upstreamHandler
	}
	log.Fatal((&http.Server{Addr: *addr, Handler: h}).ListenAndServe())
}
