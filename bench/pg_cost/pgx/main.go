// The Go+pgx side of bench/pg_cost: the same batches as pg_cost.c, sent the
// way bench/peers/go-pgx sends /queries (a prepared statement, one pgx.Batch
// per batch, one Sync), and the backend's CPU over the measured batches.
//
// usage: pgx-cost URL BATCHES PER_BATCH SQL
package main

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v4"
)

func backendCPU(pid uint32) (ns, ticks uint64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/schedstat", pid))
	if err != nil {
		panic(err)
	}
	ns, _ = strconv.ParseUint(strings.Fields(string(b))[0], 10, 64)
	b, err = os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		panic(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return ns, ut + st
}

func main() {
	if len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: pgx-cost URL BATCHES PER_BATCH SQL")
		os.Exit(2)
	}
	ctx := context.Background()
	batches, _ := strconv.Atoi(os.Args[2])
	per, _ := strconv.Atoi(os.Args[3])
	c, err := pgx.Connect(ctx, os.Args[1])
	if err != nil {
		panic(err)
	}
	sd, err := c.Prepare(ctx, "w", os.Args[4])
	if err != nil {
		panic(err)
	}
	dest := make([]interface{}, len(sd.Fields))
	for i := range dest {
		dest[i] = new(int32)
	}
	var pid uint32
	if err := c.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		panic(err)
	}
	rnd := rand.New(rand.NewSource(42))
	run := func() {
		b := &pgx.Batch{}
		for i := 0; i < per; i++ {
			b.Queue("w", int32(rnd.Intn(10000)+1))
		}
		br := c.SendBatch(ctx, b)
		for i := 0; i < per; i++ {
			if err := br.QueryRow().Scan(dest...); err != nil {
				panic(err)
			}
		}
		if err := br.Close(); err != nil {
			panic(err)
		}
	}
	for i := 0; i < batches/10+10; i++ {
		run()
	}
	ns0, t0 := backendCPU(pid)
	for i := 0; i < batches; i++ {
		run()
	}
	ns1, t1 := backendCPU(pid)
	fmt.Printf("pgx queries=%d backend_ns=%d backend_ticks=%d\n", batches*per, ns1-ns0, t1-t0)
	c.Close(ctx)
}
