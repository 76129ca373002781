// Go + pgx peer for the TechEmpower tests in bench/run.
//
//	DATABASE_URL=postgresql://... POOL_SIZE=8 GOMAXPROCS=1 ./go-pgx-peer -addr 127.0.0.1:8000
//
// Written the way Go's pgx entries are: net/http, one pgxpool, statements
// prepared on every new connection (AfterConnect), the N reads of a request
// sent as one pgx.Batch (one round trip, each row still its own query), one
// batched UPDATE per request, html/template for the fortunes. Built offline
// by bench/run from Debian's golang-github-jackc-pgx-v4-dev
// (GOPATH=/usr/share/gocode, GO111MODULE=off).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"html/template"
	"log"
	"math/rand"
	"net/http"
	"os"
	"sort"
	"strconv"

	"github.com/jackc/pgx/v4"
	"github.com/jackc/pgx/v4/pgxpool"
)

const (
	worldSelect   = "SELECT id, randomNumber FROM World WHERE id = $1"
	fortuneSelect = "SELECT id, message FROM Fortune"
	worldUpdate   = "UPDATE World SET randomNumber = v.r FROM " +
		"(SELECT unnest($1::int[]) AS id, unnest($2::int[]) AS r) AS v WHERE World.id = v.id"
)

type World struct {
	ID           int32 `json:"id"`
	RandomNumber int32 `json:"randomNumber"`
}

type Fortune struct {
	ID      int32
	Message string
}

var (
	db    *pgxpool.Pool
	cache []World
	tmpl  = template.Must(template.New("fortunes").Parse(`<!DOCTYPE html><html>` +
		`<head><title>Fortunes</title></head><body><table><tr><th>id</th><th>message</th></tr>` +
		`{{range .}}<tr><td>{{.ID}}</td><td>{{.Message}}</td></tr>{{end}}` +
		`</table></body></html>`))
)

func randomID() int32 { return int32(rand.Intn(10000) + 1) }

func count(r *http.Request, name string) int {
	n, err := strconv.Atoi(r.URL.Query().Get(name))
	switch {
	case err != nil || n < 1:
		return 1
	case n > 500:
		return 500
	}
	return n
}

func writeJSON(w http.ResponseWriter, v interface{}) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	h := w.Header()
	h.Set("Server", "Go")
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.Write(b)
}

func fail(w http.ResponseWriter, err error) {
	w.Header().Set("Server", "Go")
	http.Error(w, err.Error(), 500)
}

// readWorlds reads n random rows, each its own query, all in one batch.
func readWorlds(ctx context.Context, n int) ([]World, error) {
	batch := &pgx.Batch{}
	for i := 0; i < n; i++ {
		batch.Queue("world", randomID())
	}
	br := db.SendBatch(ctx, batch)
	defer br.Close()
	worlds := make([]World, n)
	for i := range worlds {
		if err := br.QueryRow().Scan(&worlds[i].ID, &worlds[i].RandomNumber); err != nil {
			return nil, err
		}
	}
	return worlds, nil
}

func handleDB(w http.ResponseWriter, r *http.Request) {
	var world World
	if err := db.QueryRow(r.Context(), "world", randomID()).Scan(&world.ID, &world.RandomNumber); err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, &world)
}

func handleQueries(w http.ResponseWriter, r *http.Request) {
	worlds, err := readWorlds(r.Context(), count(r, "queries"))
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, worlds)
}

func handleUpdates(w http.ResponseWriter, r *http.Request) {
	worlds, err := readWorlds(r.Context(), count(r, "queries"))
	if err != nil {
		fail(w, err)
		return
	}
	for i := range worlds {
		worlds[i].RandomNumber = randomID()
	}
	// sorted ids: concurrent batches then lock rows in one order
	sorted := append([]World(nil), worlds...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].ID < sorted[j].ID })
	ids, nums := make([]int32, len(sorted)), make([]int32, len(sorted))
	for i, s := range sorted {
		ids[i], nums[i] = s.ID, s.RandomNumber
	}
	if _, err := db.Exec(r.Context(), "update", ids, nums); err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, worlds)
}

func handleFortunes(w http.ResponseWriter, r *http.Request) {
	rows, err := db.Query(r.Context(), "fortune")
	if err != nil {
		fail(w, err)
		return
	}
	fortunes := make([]Fortune, 0, 16)
	for rows.Next() {
		var f Fortune
		if err := rows.Scan(&f.ID, &f.Message); err != nil {
			rows.Close()
			fail(w, err)
			return
		}
		fortunes = append(fortunes, f)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		fail(w, err)
		return
	}
	fortunes = append(fortunes, Fortune{0, "Additional fortune added at request time."})
	sort.Slice(fortunes, func(i, j int) bool { return fortunes[i].Message < fortunes[j].Message })
	h := w.Header()
	h.Set("Server", "Go")
	h.Set("Content-Type", "text/html; charset=utf-8")
	tmpl.Execute(w, fortunes)
}

func handleCached(w http.ResponseWriter, r *http.Request) {
	n := count(r, "count")
	worlds := make([]World, n)
	for i := range worlds {
		worlds[i] = cache[randomID()-1]
	}
	writeJSON(w, worlds)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8000", "listen address")
	flag.Parse()
	cfg, err := pgxpool.ParseConfig(os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	size, _ := strconv.Atoi(os.Getenv("POOL_SIZE"))
	if size < 1 {
		size = 8
	}
	cfg.MaxConns, cfg.MinConns = int32(size), int32(size)
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		for name, sql := range map[string]string{"world": worldSelect, "fortune": fortuneSelect,
			"update": worldUpdate} {
			if _, err := c.Prepare(ctx, name, sql); err != nil {
				return err
			}
		}
		return nil
	}
	if db, err = pgxpool.ConnectConfig(context.Background(), cfg); err != nil {
		log.Fatal(err)
	}
	rows, err := db.Query(context.Background(), "SELECT id, randomNumber FROM World ORDER BY id")
	if err != nil {
		log.Fatal(err)
	}
	for rows.Next() {
		var wd World
		if err := rows.Scan(&wd.ID, &wd.RandomNumber); err != nil {
			log.Fatal(err)
		}
		cache = append(cache, wd)
	}
	rows.Close()
	if len(cache) != 10000 {
		log.Fatalf("World has %d rows, expected 10000", len(cache))
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/plaintext", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Server", "Go")
		h.Set("Content-Type", "text/plain")
		h.Set("Content-Length", "13")
		w.Write([]byte("Hello, World!"))
	})
	mux.HandleFunc("/json", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]string{"message": "Hello, World!"})
	})
	mux.HandleFunc("/db", handleDB)
	mux.HandleFunc("/queries", handleQueries)
	mux.HandleFunc("/fortunes", handleFortunes)
	mux.HandleFunc("/updates", handleUpdates)
	mux.HandleFunc("/cached-queries", handleCached)
	log.Fatal(http.ListenAndServe(*addr, mux))
}
