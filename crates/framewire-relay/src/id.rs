//! Generational handles for inputs and outputs, and the slab that holds them.
//!
//! A handle carries the slot index and the slot's generation, so a handle to
//! a removed input or output never reaches whatever reuses its slot later.

use std::fmt;

macro_rules! handle {
    ($(#[$meta:meta])* $name:ident, $prefix:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name {
            index: u32,
            generation: u32,
        }

        impl $name {
            /// A compact form for logs and maps: generation in the high bits.
            pub const fn to_u64(self) -> u64 {
                ((self.generation as u64) << 32) | self.index as u64
            }
        }

        impl Handle for $name {
            fn new(index: u32, generation: u32) -> Self {
                $name { index, generation }
            }
            fn index(self) -> u32 {
                self.index
            }
            fn generation(self) -> u32 {
                self.generation
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}.{}"), self.index, self.generation)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self, f)
            }
        }
    };
}

handle!(
    /// Names one input of a [`Relay`](crate::Relay): a stream that frames are pushed into.
    InputId,
    "in"
);
handle!(
    /// Names one output of a [`Relay`](crate::Relay): a subscription frames are drained from.
    OutputId,
    "out"
);

pub(crate) trait Handle: Copy {
    fn new(index: u32, generation: u32) -> Self;
    fn index(self) -> u32;
    fn generation(self) -> u32;
}

#[derive(Debug)]
struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

/// A vector of slots with a free list; O(1) insert, remove and lookup.
#[derive(Debug)]
pub(crate) struct Slab<H, T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    len: usize,
    _handle: std::marker::PhantomData<H>,
}

impl<H: Handle, T> Slab<H, T> {
    pub(crate) fn new() -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
            _handle: std::marker::PhantomData,
        }
    }

    pub(crate) fn insert(&mut self, value: T) -> H {
        self.len += 1;
        if let Some(index) = self.free.pop() {
            let slot = &mut self.slots[index as usize];
            slot.value = Some(value);
            return H::new(index, slot.generation);
        }
        // Local invariant: each live slot is an input or output the caller
        // added; 2^32 of them cannot exist in memory before this fails.
        let index = u32::try_from(self.slots.len()).expect("more than 2^32 live handles");
        self.slots.push(Slot {
            generation: 0,
            value: Some(value),
        });
        H::new(index, 0)
    }

    pub(crate) fn remove(&mut self, handle: H) -> Option<T> {
        let slot = self.slots.get_mut(handle.index() as usize)?;
        if slot.generation != handle.generation() {
            return None;
        }
        let value = slot.value.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(handle.index());
        self.len -= 1;
        Some(value)
    }

    pub(crate) fn get(&self, handle: H) -> Option<&T> {
        let slot = self.slots.get(handle.index() as usize)?;
        if slot.generation != handle.generation() {
            return None;
        }
        slot.value.as_ref()
    }

    pub(crate) fn get_mut(&mut self, handle: H) -> Option<&mut T> {
        let slot = self.slots.get_mut(handle.index() as usize)?;
        if slot.generation != handle.generation() {
            return None;
        }
        slot.value.as_mut()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Live entries in slot order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (H, &T)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            // A slot index always fits u32: insert refuses to grow past it.
            s.value.as_ref().map(|v| (H::new(i as u32, s.generation), v))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_handles_miss_reused_slots() {
        let mut slab: Slab<InputId, &str> = Slab::new();
        let a = slab.insert("a");
        assert_eq!(slab.remove(a), Some("a"));
        let b = slab.insert("b");
        assert_eq!(a.index, b.index, "slot reused");
        assert_eq!(slab.get(a), None);
        assert_eq!(slab.remove(a), None);
        assert_eq!(slab.get(b), Some(&"b"));
        assert_eq!(slab.len(), 1);
        assert_eq!(format!("{b:?}"), "in0.1");
    }
}
