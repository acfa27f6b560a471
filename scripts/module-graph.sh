#!/usr/bin/env bash
# Prints the module import graph of the daemon's src/ and flags import
# cycles and arrows from a lower layer to a higher one.
#
#   scripts/module-graph.sh                    # the graph, cycles, upward arrows, a summary
#   scripts/module-graph.sh --summary          # only the findings and the summary
#   scripts/module-graph.sh --check MOD[,MOD]  # also exit 1 on a cycle or an upward
#                                              # arrow that touches one of these
#                                              # top-level modules (tests/module_graph.rs)
#
# What counts as an import: every `crate::a::b` path (in `use` lines, with
# their `{…}` groups expanded, and inline in code) and every `super::…`
# path, resolved to the deepest module that exists as a file. `edgecc::…`
# in src/main.rs counts as `crate::…`. Unit-test modules (`#[cfg(test)] mod
# tests` at a file's end) are left out: they are not the product's layering.
# A module and its own submodules are one unit toward each other (a child
# uses what its parent declares, a parent re-exports its children), so
# arrows between them are not shown.
#
# Layers, lowest first; a module takes the layer of its longest listed
# prefix. An arrow from a module to one in a higher layer is "upward".
# Keep this table in step with the `//! Layout` of src/lib.rs.
set -euo pipefail
# MODULE_GRAPH_ROOT: the crate to read (default: this repository), for the
# script's own test.
cd "${MODULE_GRAPH_ROOT:-$(dirname "$0")/..}"

LAYERS='
0 clock memory net ops::ha_role
1 crm ari ari_emulator pbx outbox_port state_port http::config storage_config ops::daemon_config simulate::settings simulate::traffic reports::config reports::time reports::figures reports::csv reports::history reports::traffic reports::today
2 config
3 http ops system::storage system::running reports
4 system
5 daemon demo simulate
6 cli main
'

exec perl -e '
use strict;
use warnings;

my ($layers_text, $mode, $check) = @ARGV;
my %layer;
for my $line (split /\n/, $layers_text) {
    my ($n, @mods) = split " ", $line;
    next unless defined $n;
    $layer{$_} = $n for @mods;
}

# Modules: one per file.
my %file_of;
for my $file (split /\n/, `find src -name "*.rs" | sort`) {
    next if $file =~ m{/(ui)/};
    my $m = $file;
    $m =~ s{^src/}{};
    $m =~ s{\.rs$}{};
    $m =~ s{/mod$}{};
    $m = "crate" if $m eq "lib";
    $m =~ s{/}{::}g;
    $file_of{$m} = $file;
}

sub parent { my ($m) = @_; return "crate" if $m !~ /::/; $m =~ s/::[^:]+$//; return $m; }
sub top { my ($m) = @_; $m =~ s/::.*//; return $m; }
sub related {
    my ($a, $b) = @_;
    return 1 if $a eq "crate" || $b eq "crate" || $a eq $b;
    return 1 if index("$a\::", "$b\::") == 0 || index("$b\::", "$a\::") == 0;
    return 0;
}
# The deepest module that `segments` (a path below the crate) names.
sub resolve {
    my @seg = @_;
    for (my $n = @seg; $n > 0; $n--) {
        my $m = join "::", @seg[0 .. $n - 1];
        return $m if exists $file_of{$m};
    }
    return undef;
}
# Expands `a::{b, c::{d, e}}` into full paths.
sub expand {
    my ($prefix, $tree) = @_;
    $tree =~ s/^\s+|\s+$//g;
    if ($tree =~ /^([^{]*)\{(.*)\}$/s) {
        my ($head, $body) = ($1, $2);
        my ($depth, $cur, @parts) = (0, "");
        for my $ch (split //, $body) {
            $depth++ if $ch eq "{";
            $depth-- if $ch eq "}";
            if ($ch eq "," && $depth == 0) { push @parts, $cur; $cur = ""; next; }
            $cur .= $ch;
        }
        push @parts, $cur;
        return map { expand("$prefix$head", $_) } grep { /\S/ } @parts;
    }
    $tree =~ s/\s+as\s+\w+$//;
    return ("$prefix$tree");
}

my %edges;    # from => { to => 1 }
for my $m (sort keys %file_of) {
    my $file = $file_of{$m};
    open my $fh, "<", $file or die "$file: $!";
    local $/;
    my $text = <$fh>;
    close $fh;
    $text =~ s/#\[cfg\(test\)\]\s*mod\s+tests\s*\{.*//s;
    $text =~ s{"(?:[^"\\]|\\.)*"}{""}gs;       # string literals
    $text =~ s{//[^\n]*}{}g;                    # comments, doc comments
    $text =~ s{/\*.*?\*/}{}gs;
    $text =~ s/\bedgecc::/crate::/g if $m eq "main";
    my @paths;
    while ($text =~ /\buse\s+((?:crate|super)::[^;]*);/g) {
        push @paths, expand("", $1);
    }
    $text =~ s/\buse\s+(?:crate|super)::[^;]*;//g;
    while ($text =~ /\b((?:crate|super)(?:::\w+)+)/g) {
        push @paths, $1;
    }
    my $base = $m eq "main" ? "crate" : $m;
    for my $p (@paths) {
        my @seg = split /::/, $p;
        if ($seg[0] eq "super") {
            my $at = $base;
            while (@seg && $seg[0] eq "super") { shift @seg; $at = parent($at); }
            unshift @seg, split(/::/, $at) unless $at eq "crate";
        } else {
            shift @seg;
        }
        @seg = grep { $_ ne "self" } @seg;
        my $to = resolve(@seg) // next;
        next if related($m, $to);
        $edges{$m}{$to} = 1;
    }
}

sub layer_of {
    my ($m) = @_;
    my @seg = split /::/, $m;
    for (my $n = @seg; $n > 0; $n--) {
        my $p = join "::", @seg[0 .. $n - 1];
        return $layer{$p} if exists $layer{$p};
    }
    return undef;
}

# Cycles: strongly connected components (Tarjan) of more than one module.
my ($index, @stack, %idx, %low, %on, @sccs) = (0);
sub strong {
    my ($v) = @_;
    $idx{$v} = $low{$v} = $index++;
    push @stack, $v;
    $on{$v} = 1;
    for my $w (sort keys %{ $edges{$v} || {} }) {
        if (!exists $idx{$w}) { strong($w); $low{$v} = $low{$w} if $low{$w} < $low{$v}; }
        elsif ($on{$w}) { $low{$v} = $idx{$w} if $idx{$w} < $low{$v}; }
    }
    if ($low{$v} == $idx{$v}) {
        my @c;
        while (1) { my $w = pop @stack; $on{$w} = 0; push @c, $w; last if $w eq $v; }
        push @sccs, [sort @c] if @c > 1;
    }
}
strong($_) for grep { !exists $idx{$_} } sort keys %file_of;

my (@upward, @unlayered);
for my $from (sort keys %edges) {
    for my $to (sort keys %{ $edges{$from} }) {
        my ($lf, $lt) = (layer_of($from), layer_of($to));
        push @upward, [$from, $to, $lf, $lt] if defined $lf && defined $lt && $lf < $lt;
    }
}
for my $m (sort keys %file_of) {
    push @unlayered, $m if $m ne "crate" && !defined layer_of($m);
}

my $edge_count = 0;
$edge_count += keys %{ $edges{$_} } for keys %edges;
if ($mode ne "--summary") {
    print "# module -> modules it imports (src/; a module and its submodules are one unit)\n";
    for my $m (sort keys %file_of) {
        my @to = sort keys %{ $edges{$m} || {} };
        next unless @to;
        my $l = layer_of($m) // "?";
        printf "%-24s L%s -> %s\n", $m, $l, join(", ", @to);
    }
    print "\n# wings (top-level modules) -> wings they import\n";
    my %wing;
    for my $from (keys %edges) {
        $wing{ top($from) }{ top($_) } = 1 for grep { top($_) ne top($from) } keys %{ $edges{$from} };
    }
    for my $w (sort keys %wing) {
        printf "%-14s -> %s\n", $w, join(" ", sort keys %{ $wing{$w} });
    }
    print "\n";
}
print "# import cycles\n";
print "none\n" unless @sccs;
print "cycle among: ", join(", ", @$_), "\n" for @sccs;
print "# upward arrows (a lower layer importing a higher one)\n";
print "none\n" unless @upward;
printf "upward: %s (L%s) -> %s (L%s)\n", @$_[0, 2, 1, 3] for @upward;
if (@unlayered) {
    print "# modules without a layer in the table: ", join(" ", @unlayered), "\n";
}
printf "# summary: %d modules, %d arrows, %d cycles, %d upward arrows\n",
    scalar(keys %file_of), $edge_count, scalar(@sccs), scalar(@upward);

if ($check) {
    my %mine = map { $_ => 1 } split /,/, $check;
    my $bad = 0;
    for my $c (@sccs) {
        if (grep { $mine{ top($_) } } @$c) { print "FAIL cycle among: ", join(", ", @$c), "\n"; $bad++; }
    }
    for my $u (@upward) {
        if ($mine{ top($u->[0]) }) { print "FAIL upward: $u->[0] -> $u->[1]\n"; $bad++; }
    }
    exit($bad ? 1 : 0);
}
' "$LAYERS" "${1:-}" "${2:-}"
