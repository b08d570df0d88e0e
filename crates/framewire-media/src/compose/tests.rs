use framewire_codec::{PixelBuffer, PixelLayout};

use super::*;

/// A solid BGRA picture.
fn solid(w: u32, h: u32, bgr: [u8; 3]) -> PixelBuffer {
    let mut px = Vec::with_capacity((w * h * 4) as usize);
    for _ in 0..w * h {
        px.extend_from_slice(&[bgr[0], bgr[1], bgr[2], 255]);
    }
    PixelBuffer::new(PixelLayout::Bgra, w, h, px).unwrap()
}

/// The colour (B, G, R) at (x, y) of an I420 picture.
fn at(pic: &PixelBuffer, x: u32, y: u32) -> [u8; 3] {
    let bgra = pic.convert(PixelLayout::Bgra).unwrap();
    let p = bgra.plane(0);
    let o = p.offset + y as usize * p.stride + x as usize * 4;
    let d = bgra.data();
    [d[o], d[o + 1], d[o + 2]]
}

fn near(a: [u8; 3], b: [u8; 3]) -> bool {
    a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= 12)
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("in{i}")).collect()
}

const COLOURS: [[u8; 3]; 4] = [[0, 0, 255], [0, 255, 0], [255, 0, 0], [0, 255, 255]];

#[test]
fn a_grid_puts_each_input_in_its_tile() {
    let inputs = names(4);
    let layout = Layout::preset(Preset::Grid, 640, 360, &inputs);
    assert_eq!(layout.tiles.len(), 4);
    let mut c = Compositor::new(640, 360, inputs, layout).unwrap();
    let pics: Vec<PixelBuffer> = COLOURS.iter().map(|&c| solid(320, 180, c)).collect();
    let out = c.compose(|name| InputState::Live(&pics[name[2..].parse::<usize>().unwrap()]));
    assert_eq!((out.layout(), out.width(), out.height()), (PixelLayout::I420, 640, 360));
    // The middle of each quarter (away from the label in the lower left).
    for (i, (x, y)) in [(160, 60), (480, 60), (160, 240), (480, 240)].into_iter().enumerate() {
        assert!(near(at(&out, x, y), COLOURS[i]), "tile {i}: {:?}", at(&out, x, y));
    }
}

#[test]
fn keep_aspect_letterboxes_and_fill_stretches() {
    let inputs = names(1);
    let mut tile = Tile::new(
        "in0",
        Rect {
            x: 0,
            y: 0,
            w: 640,
            h: 360,
        },
    );
    tile.label = None;
    // A square picture in a wide tile: bars left and right.
    let sq = solid(100, 100, COLOURS[1]);
    let mut c = Compositor::new(
        640,
        360,
        inputs.clone(),
        Layout {
            tiles: vec![tile.clone()],
        },
    )
    .unwrap();
    let out = c.compose(|_| InputState::Live(&sq));
    assert!(near(at(&out, 320, 180), COLOURS[1]));
    assert!(near(at(&out, 20, 180), [0, 0, 0]), "{:?}", at(&out, 20, 180));
    tile.fit = Fit::Fill;
    c.set_layout(Layout { tiles: vec![tile] }).unwrap();
    let out = c.compose(|_| InputState::Live(&sq));
    assert!(near(at(&out, 20, 180), COLOURS[1]));
}

#[test]
fn a_lost_input_shows_the_slate_or_its_last_picture() {
    let inputs = names(2);
    let mut layout = Layout::preset(Preset::SideBySide, 640, 360, &inputs);
    layout.tiles[1].on_loss = OnLoss::Freeze;
    let mut c = Compositor::new(640, 360, inputs, layout).unwrap();
    let last = solid(320, 360, COLOURS[2]);
    let out = c.compose(|name| InputState::Lost {
        reason: "connection refused",
        last: (name == "in1").then_some(&last),
    });
    // Left: the slate's blue at its corner (text is in the middle).
    assert!(near(at(&out, 8, 8), [96, 32, 16]), "{:?}", at(&out, 8, 8));
    // Its text: white pixels somewhere in the middle band.
    let bgra = out.convert(PixelLayout::Bgra).unwrap();
    let stride = bgra.plane(0).stride;
    let white = (0..320usize)
        .flat_map(|x| (120..240usize).map(move |y| (x, y)))
        .filter(|&(x, y)| bgra.data()[y * stride + x * 4] > 200)
        .count();
    assert!(white > 100, "no text on the slate");
    // Right: the frozen picture.
    assert!(near(at(&out, 480, 100), COLOURS[2]));
}

#[test]
fn opacity_blends_and_z_orders() {
    let inputs = names(2);
    let mut under = Tile::new(
        "in0",
        Rect {
            x: 0,
            y: 0,
            w: 640,
            h: 360,
        },
    );
    under.label = None;
    let mut over = Tile::new(
        "in1",
        Rect {
            x: 0,
            y: 0,
            w: 320,
            h: 180,
        },
    );
    (over.label, over.opacity, over.fit) = (None, 0.5, Fit::Fill);
    // Listed on top first: z decides.
    over.z = 1;
    let mut c = Compositor::new(
        640,
        360,
        inputs,
        Layout {
            tiles: vec![over, under],
        },
    )
    .unwrap();
    let (a, b) = (solid(64, 36, [0, 0, 200]), solid(64, 36, [200, 0, 0]));
    let out = c.compose(|n| InputState::Live(if n == "in0" { &a } else { &b }));
    let mixed = at(&out, 100, 100);
    assert!(near(mixed, [100, 0, 100]), "{mixed:?}");
    assert!(near(at(&out, 500, 300), [0, 0, 200]));
}

#[test]
fn a_bad_layout_is_refused_and_nothing_changes() {
    let inputs = names(2);
    let good = Layout::preset(Preset::Pip, 640, 360, &inputs);
    let mut c = Compositor::new(640, 360, inputs, good.clone()).unwrap();
    let outside = Layout {
        tiles: vec![Tile::new(
            "in0",
            Rect {
                x: 600,
                y: 0,
                w: 100,
                h: 100,
            },
        )],
    };
    let e = c.set_layout(outside).unwrap_err();
    assert_eq!(
        e.to_string(),
        "tile of `in0` at 100x100+600+0 is outside the 640x360 canvas"
    );
    let unknown = Layout {
        tiles: vec![Tile::new(
            "cam9",
            Rect {
                x: 0,
                y: 0,
                w: 100,
                h: 100,
            },
        )],
    };
    let e = c.set_layout(unknown).unwrap_err();
    assert_eq!(
        e.to_string(),
        "no input is called `cam9` (the compositor's inputs: in0, in1)"
    );
    let mut t = Tile::new(
        "in0",
        Rect {
            x: 0,
            y: 0,
            w: 100,
            h: 100,
        },
    );
    t.opacity = 1.5;
    assert!(matches!(
        c.set_layout(Layout { tiles: vec![t] }),
        Err(LayoutError::Opacity(..))
    ));
    let mut t = Tile::new(
        "in0",
        Rect {
            x: 0,
            y: 0,
            w: 100,
            h: 100,
        },
    );
    t.crop = Crop {
        x: 0.5,
        y: 0.0,
        w: 0.6,
        h: 1.0,
    };
    assert!(matches!(
        c.set_layout(Layout { tiles: vec![t] }),
        Err(LayoutError::Crop(_))
    ));
    assert_eq!(c.layout(), &good);
    assert!(matches!(
        Compositor::new(641, 360, vec![], Layout::default()),
        Err(LayoutError::Canvas(641, 360))
    ));
    assert_eq!(
        "mosaic".parse::<Preset>().unwrap_err(),
        "unknown layout `mosaic` (grid, pip, side-by-side)"
    );
}

#[test]
fn sixteen_inputs_in_a_four_by_four_grid_with_crops() {
    let inputs = names(16);
    let mut layout = Layout::preset(Preset::Grid, 1280, 720, &inputs);
    assert_eq!(
        layout.tiles[5].rect,
        Rect {
            x: 320,
            y: 180,
            w: 320,
            h: 180
        }
    );
    // The last tile shows the right half of its picture only.
    layout.tiles[15].crop = Crop {
        x: 0.5,
        y: 0.0,
        w: 0.5,
        h: 1.0,
    };
    layout.tiles[15].fit = Fit::Fill;
    let mut c = Compositor::new(1280, 720, inputs, layout).unwrap();
    let pics: Vec<PixelBuffer> = (0..16u8)
        .map(|i| solid(640, 360, [i * 15, 255 - i * 15, 128]))
        .collect();
    // A picture half one colour, half another, for the crop.
    let mut halves = solid(640, 360, [0, 0, 255])
        .convert(PixelLayout::Bgra)
        .unwrap()
        .data()
        .to_vec();
    for row in halves.chunks_exact_mut(640 * 4) {
        for px in row[320 * 4..].chunks_exact_mut(4) {
            px.copy_from_slice(&[255, 0, 0, 255]);
        }
    }
    let halves = PixelBuffer::new(PixelLayout::Bgra, 640, 360, halves).unwrap();
    let out = c.compose(|n| {
        let i: usize = n[2..].parse().unwrap();
        InputState::Live(if i == 15 { &halves } else { &pics[i] })
    });
    for i in 0..15u32 {
        let (x, y) = ((i % 4) * 320 + 160, (i / 4) * 180 + 60);
        let want = [(i * 15) as u8, (255 - i * 15) as u8, 128];
        assert!(
            near(at(&out, x, y), want),
            "tile {i}: {:?} want {want:?}",
            at(&out, x, y)
        );
    }
    // Only the blue half, stretched over the whole tile.
    assert!(near(at(&out, 3 * 320 + 20, 3 * 180 + 40), [255, 0, 0]));
}
