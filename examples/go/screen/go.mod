module github.com/ddaebm/ddaebm/examples/go/screen

go 1.22

require github.com/ddaebm/ddaebm/bindings/go v0.0.0

replace github.com/ddaebm/ddaebm/bindings/go => ../../../bindings/go
