package memstat

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// families group modules that come in together: one SDK split into many
// modules, or one vendor's libraries. The first prefix that matches wins.
var families = []struct{ prefix, name string }{
	{"k8s.io/", "client-go & k8s.io"},
	{"sigs.k8s.io/", "client-go & k8s.io"},
	{"github.com/aws/", "AWS SDK"},
	{"cloud.google.com/", "Google Cloud & gRPC"},
	{"google.golang.org/", "Google Cloud & gRPC"},
	{"github.com/googleapis/", "Google Cloud & gRPC"},
	{"github.com/envoyproxy/", "Google Cloud & gRPC"},
	{"github.com/cncf/xds", "Google Cloud & gRPC"},
	{"github.com/Azure/", "Azure SDK"},
	{"github.com/AzureAD/", "Azure SDK"},
	{"github.com/hashicorp/", "HashiCorp (Vault)"},
	{"github.com/aliyun/", "lego providers' SDKs"},
	{"github.com/tencentcloud/", "lego providers' SDKs"},
	{"github.com/huaweicloud/", "lego providers' SDKs"},
	{"github.com/baidubce/", "lego providers' SDKs"},
	{"github.com/volcengine/", "lego providers' SDKs"},
	{"github.com/oracle/", "lego providers' SDKs"},
	{"github.com/go-acme/lego/", "lego"},
	{"github.com/getsops/", "sops"},
	{"github.com/go-git/", "go-git"},
	{"github.com/prometheus/", "prometheus"},
	{"github.com/letsencrypt/", "pebble & challtestsrv"},
	{"github.com/certsync/", "certsync"},
	{StdModule, "Go standard library"},
	{"golang.org/x/", "golang.org/x"},
	{"(section ", "unattributed sections"},
	{RuntimeData, "unattributed sections"},
}

// Family is the group a module is reported in ("AWS SDK", "client-go &
// k8s.io"), or "other".
func Family(module string) string {
	for _, f := range families {
		if module == f.prefix || strings.HasPrefix(module, f.prefix) {
			return f.name
		}
	}
	return "other"
}

// ByFamily sums m by Family.
func ByFamily(m map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range m {
		out[Family(k)] += v
	}
	return out
}

// Row is one line of a table.
type Row struct {
	Name  string
	Bytes int64
}

// Top is m's rows largest first, the rows past n folded into one "(n
// more)" row; n ≤ 0 keeps them all.
func Top(m map[string]int64, n int) []Row {
	rows := make([]Row, 0, len(m))
	for k, v := range m {
		if v != 0 {
			rows = append(rows, Row{k, v})
		}
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].Bytes != rows[j].Bytes {
			return rows[i].Bytes > rows[j].Bytes
		}
		return rows[i].Name < rows[j].Name
	})
	if n > 0 && len(rows) > n {
		rest := Row{Name: fmt.Sprintf("(%d more)", len(rows)-n)}
		for _, r := range rows[n:] {
			rest.Bytes += r.Bytes
		}
		rows = append(rows[:n], rest)
	}
	return rows
}

// WriteTable writes rows as "  12.3 MB  name" lines under a title, with
// their total.
func WriteTable(w io.Writer, title string, rows []Row) {
	var total int64
	for _, r := range rows {
		total += r.Bytes
	}
	fmt.Fprintf(w, "%s (total %.1f MB)\n", title, MB(total))
	for _, r := range rows {
		fmt.Fprintf(w, "  %7.1f MB  %s\n", MB(r.Bytes), r.Name)
	}
}

// MB is n in mebibytes.
func MB(n int64) float64 { return float64(n) / (1 << 20) }
