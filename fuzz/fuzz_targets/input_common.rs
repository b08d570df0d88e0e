// Shared by the fuzz targets that read structured choices from their bytes
// (included with `include!`).

/// The bytes, read one value at a time; zeros once they run out.
#[allow(dead_code)]
struct Input<'a>(&'a [u8]);

#[allow(dead_code)]
impl Input<'_> {
    fn u8(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else { return 0 };
        self.0 = rest;
        b
    }
    fn u16(&mut self) -> u16 {
        u16::from(self.u8()) << 8 | u16::from(self.u8())
    }
    /// The next `n` bytes (fewer when they run out).
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.0.len());
        let (a, rest) = self.0.split_at(n);
        self.0 = rest;
        a.to_vec()
    }
    /// Up to 39 bytes as text.
    fn text(&mut self) -> String {
        let n = usize::from(self.u8() % 40);
        String::from_utf8_lossy(&self.bytes(n)).into_owned()
    }
    /// One of `of`, none when it is empty.
    fn pick<T: Copy>(&mut self, of: &[T]) -> Option<T> {
        (!of.is_empty()).then(|| of[usize::from(self.u8()) % of.len()])
    }
}
