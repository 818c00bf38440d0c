//! DT patch data and the `/memreserve/` list.

use super::*;

#[test]
fn dt_patch_and_memreserve_list() {
    let (v, h) = built(BASE, &[0, 1, 0x100], 2);
    let img = PenImage::parse(&v, BASE).unwrap();
    let p = img.dt_patch();
    assert_eq!(p.memreserve, Region::new(BASE, 0x1000));
    assert_eq!(p.park_addr, BASE + 0x88);
    assert_eq!(p.cpus.len(), 3);
    assert_eq!(p.release_addr(0x100), Some(BASE + 0x380));
    assert_eq!(p.release_addr(0x8000_0100), Some(BASE + 0x380)); // masked
    assert_eq!(p.release_addr(5), None);
    assert_eq!(p.release_addr(1), h.slot_release_addr(1));
    // release addresses are unique and 64 bytes apart
    for w in p.cpus.windows(2) {
        assert_eq!(w[1].release_addr - w[0].release_addr, 64);
    }

    let old = Region::new(0x7fd0_0000, 0x1000);
    let other = Region::new(0x4000_0000, 0x1000);
    let new = Region::new(BASE, 0x1000);
    assert_eq!(
        memreserve_list(&[other, old, new, other, new], &[old], new),
        [other, new]
    );
    assert_eq!(memreserve_list(&[], &[], new), [new]);
    // repeated application is stable: no accumulation
    let once = memreserve_list(&[other, old], &[], new);
    assert_eq!(memreserve_list(&once, &[], new), once);
}
