//! Layout descriptors: how a host code orders sites, directions, links and matrix entries in
//! its own buffers, and their resolution against a lattice into offset tables.
//!
//! flowhmc's own order (README, Conventions) is lexicographic with x fastest, directions x, y, (z,) t.
//! A host describes its order once; [`ResolvedGaugeLayout`] and [`ResolvedSpinorLayout`] turn
//! the description into one offset per link or site, so the copies in and out are plain
//! gathers and scatters. Complex numbers are always stored as (re, im) pairs.

use super::handover::{self, Handover};
use crate::dirac::gamma::SpinBasis;
use crate::error::{Error, Result};
use crate::geometry::Lattice;

/// How a host numbers the sites of the lattice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SiteOrder {
    /// Lexicographic order in the given axes: `fastest_first` lists the axes (0 = x, ..,
    /// D-1 = t) from the fastest-running index to the slowest. With `even_odd`, all even sites
    /// (sum of coordinates even) come first and each parity keeps the lexicographic order.
    Lexicographic {
        /// The axes from the fastest-running to the slowest, a permutation of 0..D.
        fastest_first: Vec<usize>,
        /// Even sites first (as MILC's EVENFIRST and QUDA's CPU fields).
        even_odd: bool,
    },
    /// An explicit table: entry s is the host index of flowhmc's lexicographic site s (for
    /// orders no rule describes, such as openQCD's blocked `ipt`). It must be a permutation.
    Table(Vec<usize>),
}

impl SiteOrder {
    /// Lexicographic with x fastest and time slowest (flowhmc's own order).
    pub fn x_fastest(ndim: usize, even_odd: bool) -> Self {
        SiteOrder::Lexicographic { fastest_first: (0..ndim).collect(), even_odd }
    }

    /// Lexicographic with time fastest and x slowest (a C array indexed `[x][y][z][t]`).
    pub fn t_fastest(ndim: usize, even_odd: bool) -> Self {
        SiteOrder::Lexicographic { fastest_first: (0..ndim).rev().collect(), even_odd }
    }

    /// The host index of every flowhmc site, checked to be a permutation of 0..volume.
    pub fn resolve(&self, lattice: &Lattice) -> Result<Vec<usize>> {
        let (d, volume) = (lattice.ndim(), lattice.volume());
        let table = match self {
            SiteOrder::Lexicographic { fastest_first, even_odd } => {
                check_permutation(fastest_first, d, "site order: fastest_first")?;
                let host_lex: Vec<usize> = (0..volume)
                    .map(|s| {
                        let x = lattice.coords(s);
                        fastest_first.iter().rev().fold(0, |acc, &a| acc * lattice.dims()[a] + x[a])
                    })
                    .collect();
                if *even_odd {
                    // rank of each site within its parity, in host lexicographic order
                    let mut by_host = vec![0; volume];
                    for (s, &h) in host_lex.iter().enumerate() {
                        by_host[h] = s;
                    }
                    let mut table = vec![0; volume];
                    let mut next = [0, volume / 2];
                    for &s in &by_host {
                        let p = lattice.parity(s) as usize;
                        table[s] = next[p];
                        next[p] += 1;
                    }
                    table
                } else {
                    host_lex
                }
            }
            SiteOrder::Table(t) => {
                if t.len() != volume {
                    return Err(Error::Host(format!(
                        "site_table: {} entries, the lattice {:?} has {volume} sites",
                        t.len(),
                        lattice.dims()
                    )));
                }
                check_permutation(t, volume, "site_table")?;
                t.clone()
            }
        };
        Ok(table)
    }
}

/// Checks that `p` is a permutation of 0..n; an error names the first entry that is not.
fn check_permutation(p: &[usize], n: usize, what: &str) -> Result<()> {
    let mut first_at = vec![None; n];
    for (k, &i) in p.iter().enumerate() {
        let problem = match first_at.get_mut(i) {
            None => format!("not below {n}"),
            Some(Some(earlier)) => format!("repeats entry {earlier}"),
            Some(slot) => {
                *slot = Some(k);
                continue;
            }
        };
        return Err(Error::Host(format!("{what}[{k}] = {i}: {problem} (need a permutation of 0..{n})")));
    }
    if p.len() != n {
        return Err(Error::Host(format!("{what}: {} entries, expected {n}", p.len())));
    }
    Ok(())
}

/// Where the links of a site sit in a host gauge buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkOrder {
    /// `[site][mu][matrix]` (MILC's `site.link[mu]`).
    SiteMajor,
    /// `[mu][site][matrix]` (QDP++/Chroma's `multi1d<LatticeColorMatrix>`, QUDA's QDP order).
    DirectionMajor,
    /// openQCD: only odd sites carry links; odd site x (host index h >= V/2) holds
    /// `[U(x, mu), U(x - mu, mu)]` for each host direction mu at `8 (h - V/2) + 2 mu` and
    /// `+ 1`. The host site order must put the odd sites last, as openQCD's `ipt` does. On a
    /// cut lattice each rank's buffer is its block's, as in openQCD, and the links across
    /// the faces move between the ranks ([`super::handover`]).
    OpenQcd,
}

/// Storage order of the entries of an N x N colour matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatrixOrder {
    /// `[row][col]` (C arrays, MILC, openQCD, QDP++).
    RowMajor,
    /// `[col][row]` (Fortran-style codes).
    ColumnMajor,
}

/// A host gauge-field layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GaugeLayout {
    /// The host's site numbering.
    pub sites: SiteOrder,
    /// Where each site's links go.
    pub links: LinkOrder,
    /// `directions[mu]` is the host's index of flowhmc's direction mu (x, y, (z,) t): the
    /// identity for codes with time last, `[1, 2, 3, 0]` for openQCD (time first).
    pub directions: Vec<usize>,
    /// Entry order inside each matrix.
    pub matrix: MatrixOrder,
}

/// The host's direction index of each flowhmc direction mu: mu itself for hosts with time
/// last, (mu + 1) mod D for hosts that number time first (openQCD: t, x, y, z).
pub fn host_directions(ndim: usize, time_first: bool) -> Vec<usize> {
    (0..ndim).map(|mu| if time_first { (mu + 1) % ndim } else { mu }).collect()
}

impl GaugeLayout {
    /// MILC: site-major, even sites first, x fastest, time last, row-major.
    pub fn milc(ndim: usize) -> Self {
        GaugeLayout {
            sites: SiteOrder::x_fastest(ndim, true),
            links: LinkOrder::SiteMajor,
            directions: host_directions(ndim, false),
            matrix: MatrixOrder::RowMajor,
        }
    }

    /// QDP++/Chroma (and QUDA's QDP order): direction-major, even sites first, x fastest,
    /// time last, row-major.
    pub fn qdp(ndim: usize) -> Self {
        GaugeLayout { links: LinkOrder::DirectionMajor, ..Self::milc(ndim) }
    }

    /// openQCD: links on odd sites, time first, row-major, with the host's site table (its
    /// `ipt`, read with flowhmc's coordinates: entry s is `ipt` of the site with flowhmc
    /// lexicographic index s).
    pub fn openqcd(site_table: Vec<usize>) -> Self {
        GaugeLayout {
            sites: SiteOrder::Table(site_table),
            links: LinkOrder::OpenQcd,
            directions: host_directions(4, true),
            matrix: MatrixOrder::RowMajor,
        }
    }
}

/// A gauge layout resolved against a lattice and a number of colours: the host offset (in
/// reals) of every link.
#[derive(Clone, Debug)]
pub struct ResolvedGaugeLayout {
    /// Host offset of the first real of link (s, mu) at `s * D + mu`.
    offsets: Vec<usize>,
    colors: usize,
    /// Host position (in reals, from the matrix start) of the real part of row-major entry k.
    entries: Vec<usize>,
    /// openQCD's layout on a cut lattice: the links across the block's faces; their offsets
    /// in `offsets` lie after the buffer, in the links received from the block above.
    handovers: Vec<Handover>,
}

impl ResolvedGaugeLayout {
    /// Resolves `layout` for N x N matrices (N = `colors`) on `lattice`.
    pub fn new(layout: &GaugeLayout, lattice: &Lattice, colors: usize) -> Result<Self> {
        let d = lattice.ndim();
        check_permutation(&layout.directions, d, "gauge layout: directions")?;
        let host_site = layout.sites.resolve(lattice)?;
        let (volume, reals) = (lattice.volume(), 2 * colors * colors);
        let odd_index = |h: usize| {
            h.checked_sub(volume / 2).ok_or_else(|| {
                Error::Host("openQCD gauge layout: the site order must put odd sites last".into())
            })
        };
        // openQCD's layout on a cut lattice: the links across the faces (see [`handover`])
        let mut handovers = Vec::new();
        let mut appended_at = vec![None; volume * d];
        if layout.links == LinkOrder::OpenQcd {
            for mu in (0..d).filter(|&mu| lattice.is_cut(mu)) {
                let hmu = layout.directions[mu];
                let held = handover::face_sites(lattice, mu, 0, 1)
                    .map(|x| Ok((2 * d * odd_index(host_site[x])? + 2 * hmu + 1) * reals))
                    .collect::<Result<Vec<usize>>>()?;
                let first = handovers.iter().map(|h: &Handover| h.held.len()).sum::<usize>();
                for (k, y) in handover::face_sites(lattice, mu, lattice.dims()[mu] - 1, 0).enumerate() {
                    appended_at[y * d + mu] = Some(first + k);
                }
                handovers.push(Handover { mu, held, first });
            }
        }
        let local_len = volume * d * reals;
        let mut offsets = vec![0; volume * d];
        for s in 0..volume {
            for mu in 0..d {
                let hmu = layout.directions[mu];
                let link = match layout.links {
                    LinkOrder::SiteMajor => host_site[s] * d + hmu,
                    LinkOrder::DirectionMajor => hmu * volume + host_site[s],
                    LinkOrder::OpenQcd if lattice.parity(s) == 1 => {
                        2 * d * odd_index(host_site[s])? + 2 * hmu
                    }
                    LinkOrder::OpenQcd => match appended_at[s * d + mu] {
                        // held by the block above: after the buffer
                        Some(k) => local_len / reals + k,
                        None => 2 * d * odd_index(host_site[lattice.fwd(s, mu)])? + 2 * hmu + 1,
                    },
                };
                offsets[s * d + mu] = link * reals;
            }
        }
        let entries = (0..colors * colors)
            .map(|k| {
                let (row, col) = (k / colors, k % colors);
                2 * match layout.matrix {
                    MatrixOrder::RowMajor => row * colors + col,
                    MatrixOrder::ColumnMajor => col * colors + row,
                }
            })
            .collect();
        Ok(ResolvedGaugeLayout { offsets, colors, entries, handovers })
    }

    /// Reals the host buffer holds: volume x D x 2 N^2.
    pub fn len(&self) -> usize {
        self.offsets.len() * 2 * self.colors * self.colors
    }

    /// Whether the layout holds no links (never, for a valid lattice).
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// Host offset of the first real of link (s, mu), `s * D + mu` in flowhmc's order (past the
    /// buffer's end for a link the block above holds, see [`Self::handovers`]).
    pub fn offset(&self, link: usize) -> usize {
        self.offsets[link]
    }

    /// The links across the block's faces (openQCD's layout on a cut lattice; empty otherwise).
    pub fn handovers(&self) -> &[Handover] {
        &self.handovers
    }

    /// Reals of one matrix: 2 N^2.
    pub fn reals_per_link(&self) -> usize {
        2 * self.colors * self.colors
    }

    /// Host positions (in reals, from the matrix start) of the real parts of the N^2 entries
    /// in row-major order; each imaginary part follows its real part.
    pub fn entries(&self) -> &[usize] {
        &self.entries
    }
}

/// Order of the components of a spinor at one site.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpinorOrder {
    /// `[spin][color]` (QDP++, MILC's wilson_vector, openQCD).
    SpinColor,
    /// `[color][spin]`.
    ColorSpin,
}

/// A host spinor-field layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpinorLayout {
    /// The host's site numbering.
    pub sites: SiteOrder,
    /// Component order at a site.
    pub order: SpinorOrder,
    /// The host's gamma basis (4D; 2D spinors always use the internal basis of
    /// [`crate::dirac::gamma`]).
    pub basis: SpinBasis,
}

/// A spinor layout resolved against a lattice: the host offset (in reals) of every site.
#[derive(Clone, Debug)]
pub struct ResolvedSpinorLayout {
    offsets: Vec<usize>,
    spins: usize,
    colors: usize,
    order: SpinorOrder,
    /// The host basis, for 4D spinors.
    pub basis: Option<SpinBasis>,
}

impl ResolvedSpinorLayout {
    /// Resolves `layout` for spinors of `spins` components of `colors` colours.
    pub fn new(layout: &SpinorLayout, lattice: &Lattice, spins: usize, colors: usize) -> Result<Self> {
        let host_site = layout.sites.resolve(lattice)?;
        let per_site = 2 * spins * colors;
        Ok(ResolvedSpinorLayout {
            offsets: host_site.iter().map(|&h| h * per_site).collect(),
            spins,
            colors,
            order: layout.order,
            basis: (spins == 4).then_some(layout.basis),
        })
    }

    /// Reals the host buffer holds: volume x 2 x spins x colours.
    pub fn len(&self) -> usize {
        self.offsets.len() * 2 * self.spins * self.colors
    }

    /// Whether the layout holds no sites (never, for a valid lattice).
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// Host offset of the real part of component (spin, color) at flowhmc site `site`.
    pub fn offset(&self, site: usize, spin: usize, color: usize) -> usize {
        self.offsets[site]
            + 2 * match self.order {
                SpinorOrder::SpinColor => spin * self.colors + color,
                SpinorOrder::ColorSpin => color * self.spins + spin,
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_odd_x_fastest_is_the_lattice_even_odd_index() {
        let lat = Lattice::new(&[4, 2, 6, 4]).unwrap();
        let table = SiteOrder::x_fastest(4, true).resolve(&lat).unwrap();
        assert!(table.iter().enumerate().all(|(s, &h)| h == lat.eo_index(s)));
        let plain = SiteOrder::x_fastest(4, false).resolve(&lat).unwrap();
        assert!(plain.iter().enumerate().all(|(s, &h)| s == h));
    }

    #[test]
    fn t_fastest_runs_time_first() {
        let lat = Lattice::new(&[4, 6]).unwrap();
        let table = SiteOrder::t_fastest(2, false).resolve(&lat).unwrap();
        // site (x, t) = (1, 2) sits at t + 6 x
        assert_eq!(table[lat.site(&[1, 2])], 2 + 6);
    }

    #[test]
    fn openqcd_links_cover_the_odd_site_blocks_once() {
        let lat = Lattice::new(&[4, 4, 4, 4]).unwrap();
        let eo = SiteOrder::x_fastest(4, true).resolve(&lat).unwrap();
        let r = ResolvedGaugeLayout::new(&GaugeLayout::openqcd(eo), &lat, 3).unwrap();
        let mut offsets: Vec<usize> = (0..lat.volume() * 4).map(|l| r.offset(l) / 18).collect();
        offsets.sort_unstable();
        assert_eq!(offsets, (0..lat.volume() * 4).collect::<Vec<_>>());
    }

    #[test]
    fn bad_descriptors_are_refused() {
        let lat = Lattice::new(&[4, 4]).unwrap();
        let bad = SiteOrder::Lexicographic { fastest_first: vec![0, 0], even_odd: false };
        let e = bad.resolve(&lat).unwrap_err().to_string();
        assert!(e.contains("fastest_first[1] = 0: repeats entry 0 (need a permutation of 0..2)"), "{e}");
        let e = SiteOrder::Table(vec![0; 16]).resolve(&lat).unwrap_err().to_string();
        assert!(e.contains("site_table[1] = 0: repeats entry 0"), "{e}");
        assert!(SiteOrder::Table(vec![0; 3]).resolve(&lat).unwrap_err().to_string().contains("3 entries"));
        // openQCD needs the odd sites last; x-fastest lexicographic order interleaves them
        let lex = SiteOrder::x_fastest(2, false).resolve(&lat).unwrap();
        let mut layout = GaugeLayout::openqcd(lex);
        layout.directions = vec![1, 0];
        assert!(
            ResolvedGaugeLayout::new(&layout, &lat, 1).unwrap_err().to_string().contains("odd sites last")
        );
    }
}
