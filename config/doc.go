// Package config reads a pghaul migration file (version 1): the YAML types
// with their defaults, Load and Parse (which walk the yaml.Node tree so every
// problem names file:line:col), ${VAR} expansion, Validate, and the name
// filters that select databases, tables, roles and extensions.
//
// It is pure: it never connects to a server and must not import pgx, net
// (net/url is fine), os/exec or database/sql. Reading the file and the
// environment are its only I/O, both at the edge in Load.
package config
