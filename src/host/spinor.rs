//! Spinor fields to and from host buffers, with the gamma-basis change of 4D spinors.

use super::check_len;
use super::layout::ResolvedSpinorLayout;
use crate::backend::cpu::PackedGroup;
use crate::backend::cpu::packed::Real;
use crate::checkerboard::Checkerboard;
use crate::comm::agreed;
use crate::error::{Error, Result};
use crate::spinor::SpinorField;
use num_complex::Complex64;

/// Reads a host spinor buffer (this rank's block on a cut lattice) into a full field (internal
/// gamma basis). Fails, naming the site by its global coordinates, when the buffer has the
/// wrong length or holds a non-finite value. Collective: a rank's failure is every rank's.
pub fn import_spinor<G: PackedGroup, const S: usize, R: Real>(
    layout: &ResolvedSpinorLayout,
    cb: &Checkerboard,
    buffer: &[R],
) -> Result<SpinorField<G, S>> {
    let lattice = cb.lattice();
    let read = || {
        check_len("spinor field", buffer.len(), layout.len())?;
        let mut psi = SpinorField::full(cb);
        for site in 0..lattice.volume() {
            for color in 0..G::NC {
                let mut v = [Complex64::new(0.0, 0.0); S];
                for (spin, z) in v.iter_mut().enumerate() {
                    let at = layout.offset(site, spin, color);
                    *z = Complex64::new(buffer[at].to_f64(), buffer[at + 1].to_f64());
                }
                if !v.iter().all(|z| z.is_finite()) {
                    return Err(Error::Host(format!(
                        "spinor field: the value at {:?} is not finite",
                        lattice.global_coords(site)
                    )));
                }
                let v = change_basis(layout, v, false);
                for (spin, z) in v.iter().enumerate() {
                    psi.set(cb, site, spin, color, *z);
                }
            }
        }
        Ok(psi)
    };
    agreed(lattice.comm().as_ref(), read())
}

/// Writes a full field into a host buffer, in the host's gamma basis and precision. Fails,
/// without writing, when the buffer has the wrong length.
pub fn export_spinor<G: PackedGroup, const S: usize, R: Real>(
    layout: &ResolvedSpinorLayout,
    cb: &Checkerboard,
    psi: &SpinorField<G, S>,
    buffer: &mut [R],
) -> Result<()> {
    check_len("spinor field", buffer.len(), layout.len())?;
    for site in 0..cb.lattice().volume() {
        for color in 0..G::NC {
            let v: [Complex64; S] = std::array::from_fn(|spin| psi.get(cb, site, spin, color));
            for (spin, z) in change_basis(layout, v, true).iter().enumerate() {
                let at = layout.offset(site, spin, color);
                buffer[at] = R::from_f64(z.re);
                buffer[at + 1] = R::from_f64(z.im);
            }
        }
    }
    Ok(())
}

/// One colour component's spin vector from the internal basis to the host's (`to_host`) or
/// back; 2D spinors have one basis.
fn change_basis<const S: usize>(
    layout: &ResolvedSpinorLayout,
    v: [Complex64; S],
    to_host: bool,
) -> [Complex64; S] {
    let Some(basis) = layout.basis else { return v };
    let four: [Complex64; 4] = std::array::from_fn(|i| v[i]);
    let converted = if to_host { basis.to_host(&four) } else { basis.from_host(&four) };
    std::array::from_fn(|i| converted[i])
}
