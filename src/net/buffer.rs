//! A byte buffer with a hard capacity: bytes are appended at the end and consumed from the
//! front, and the unread part is moved to the front only when room is needed.

/// A bounded FIFO of bytes. It never grows past the capacity it was made with, so a peer that
/// sends faster than the other side reads is held back, not buffered without end.
#[derive(Debug)]
pub struct Buffer {
    data: Box<[u8]>,
    /// First unread byte.
    start: usize,
    /// One past the last written byte.
    end: usize,
}

impl Buffer {
    /// An empty buffer holding at most `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Buffer {
        Buffer {
            data: vec![0; capacity].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    /// A buffer with no storage: what an idle connection holds, so that thousands of idle
    /// connections cost no buffer memory. Give it storage from a [`BufferPool`] before use.
    pub fn detached() -> Buffer {
        Buffer {
            data: Box::new([]),
            start: 0,
            end: 0,
        }
    }

    /// It has no storage.
    pub fn is_detached(&self) -> bool {
        self.data.is_empty()
    }

    /// The bytes written and not yet consumed.
    pub fn data(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    /// How many bytes are waiting.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// No bytes are waiting.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// The most bytes it can ever hold.
    pub fn capacity(&self) -> usize {
        self.data.len()
    }

    /// No room is left, even after compacting.
    pub fn is_full(&self) -> bool {
        self.len() == self.capacity()
    }

    /// Drops `n` bytes from the front (at most what is there).
    pub fn consume(&mut self, n: usize) {
        self.start += n.min(self.len());
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// The free space after the data, moving the data to the front first if the free space at
    /// the end is less than half the capacity. Follow with [`Buffer::commit`].
    pub fn space(&mut self) -> &mut [u8] {
        if self.start > 0 && self.data.len() - self.end < self.data.len() / 2 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.data[self.end..]
    }

    /// Marks `n` bytes of [`Buffer::space`] as written.
    pub fn commit(&mut self, n: usize) {
        self.end = (self.end + n).min(self.data.len());
    }

    /// Appends as much of `bytes` as fits; returns how much did.
    pub fn push(&mut self, bytes: &[u8]) -> usize {
        let space = self.space();
        let n = space.len().min(bytes.len());
        space[..n].copy_from_slice(&bytes[..n]);
        self.commit(n);
        n
    }
}

/// Storage for buffers of one size, kept when a connection closes and handed to the next one,
/// so a stream of short connections neither allocates nor zeroes memory for each.
#[derive(Debug)]
pub struct BufferPool {
    size: usize,
    free: Vec<Box<[u8]>>,
    /// Most buffers kept free; beyond it they go back to the allocator.
    max_free: usize,
}

impl BufferPool {
    /// A pool of buffers of `size` bytes keeping at most `max_free` unused.
    pub fn new(size: usize, max_free: usize) -> BufferPool {
        BufferPool {
            size,
            free: Vec::new(),
            max_free,
        }
    }

    /// The size of the buffers it hands out.
    pub fn size(&self) -> usize {
        self.size
    }

    /// An empty buffer, reused when one is free.
    pub fn take(&mut self) -> Buffer {
        match self.free.pop() {
            Some(data) => Buffer {
                data,
                start: 0,
                end: 0,
            },
            None => Buffer::with_capacity(self.size),
        }
    }

    /// Sets `n` buffers aside now (at most what it keeps), so the first bursts take them
    /// without allocating. Their pages are untouched zeroes until used, so they cost address
    /// space, not memory.
    pub fn prefill(&mut self, n: usize) {
        while self.free.len() < n.min(self.max_free) {
            self.free.push(vec![0; self.size].into_boxed_slice());
        }
    }

    /// Takes a buffer back; its contents are forgotten.
    pub fn give(&mut self, buf: Buffer) {
        if self.free.len() < self.max_free && buf.data.len() == self.size {
            self.free.push(buf.data);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_within_capacity() {
        let mut b = Buffer::with_capacity(8);
        assert_eq!(b.push(b"abcdef"), 6);
        assert_eq!(b.push(b"ghij"), 2);
        assert!(b.is_full());
        b.consume(5);
        assert_eq!(b.data(), b"fgh");
        // Space at the end is 0 < 4, so the data moves to the front.
        assert_eq!(b.space().len(), 5);
        assert_eq!(b.push(b"12345678"), 5);
        assert_eq!(b.data(), b"fgh12345");
        b.consume(100);
        assert!(b.is_empty());
        assert_eq!(b.space().len(), 8);
    }

    #[test]
    fn pool_reuses_and_forgets_contents() {
        let mut pool = BufferPool::new(16, 1);
        let mut a = pool.take();
        a.push(b"secret");
        let ptr = a.data().as_ptr();
        pool.give(a);
        pool.give(Buffer::with_capacity(16)); // over max_free: dropped
        pool.give(Buffer::with_capacity(8)); // wrong size: dropped
        let b = pool.take();
        assert!(b.is_empty());
        assert_eq!(b.capacity(), 16);
        let d = Buffer::detached();
        assert!(d.is_detached() && d.is_full() && d.is_empty());
        pool.give(d); // no storage to keep
        assert_eq!(b.data.as_ptr(), ptr, "the same storage came back");
        assert_eq!(pool.take().capacity(), 16);
        let mut pool = BufferPool::new(16, 3);
        pool.prefill(5);
        assert_eq!(pool.free.len(), 3, "never more than it keeps");
    }
}
