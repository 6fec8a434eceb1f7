module github.com/ddaebm/ddaebm/bindings/go

go 1.22
