"""Words and colours the synthetic world names things with: topic words, title templates, colour names."""

from __future__ import annotations

TOPIC_NOUNS = """
anchor archery aquarium arcade avalanche badminton bakery balloon bamboo banjo barbecue basketball bazaar
beekeeping bicycle billiards birdwatching blacksmith bonsai bouldering bowling boxing bread bridge broth
bungee cabin cactus calligraphy camping canoe canyon carpentry carousel cartoon castle cathedral ceramics
chess chili chocolate circus climbing coffee comics compost cookie coral cosplay cricket crochet croissant
cupcake curling cycling dance darts desert diving dolphin drone drums dumpling eclipse embroidery espresso
falconry farming fencing ferry festival fireworks fishing flamenco florist folklore fossil fountain fudge
gardening geyser glacier glassblowing gliding golf graffiti granola guitar gymnastics hammock harbor harp
hiking hockey honey horseback hummus iceberg igloo jazz jellyfish jigsaw judo juggling kayak kebab kimchi
kiteboarding knitting koala lagoon lantern lasagna lighthouse llama lobster locksmith lullaby magic mango
marathon marimba market meadow meteor minigolf monsoon mosaic motocross mountain museum mushroom noodle
oasis observatory opera orchard origami orchestra otter paddleboard pancake paragliding parkour pastry
penguin piano picnic pilates pinball pizza planetarium plankton pottery pretzel puppetry quilting rafting
rainforest ramen reef robotics rodeo rollerblade rowing rugby safari sailing salsa samba sandcastle
saxophone scuba sculpture seashell sewing skateboard skiing skydiving sledding snorkel snowboard soccer
sourdough spices squash stargazing street sumo sunflower surfing sushi swimming taco tango tapestry tea
telescope tennis terrarium theater thunderstorm tofu tortilla trampoline treehouse trivia trombone tulip
tundra turtle ukulele unicycle vineyard violin volcano volleyball waffle wakeboard walrus waterfall
weaving whale windsurf woodcarving wrestling yoga yodel zebra ziplining
""".split()

TOPIC_ADJECTIVES = """
alpine amber arctic autumn breezy bright coastal cosmic crisp dusty electric fiery foggy frozen golden
hidden humble lunar misty neon nimble northern quiet rustic silver sleepy smoky solar spicy starry stormy
sunny tidal tiny urban velvet wild windy wooden
""".split()

INFORMATIVE_TITLE_TEMPLATES = (
    "{w3} {w4} session | {w2} {w1}",
    "trying {w4} {w3} for the first time ({w2}, {w1})",
    "{w1} diaries: {w2} {w3} {w4}",
    "how i do {w3} {w4} - {w2} {w1}",
    "{w2} {w1} moments: {w4} {w3}",
    "quick {w3} {w4} guide #{w2} #{w1}",
)

VAGUE_TITLES = (
    "you will not believe this",
    "wait for the end",
    "best day ever",
    "just vibes",
    "this made my day",
    "pov: monday morning",
    "cannot stop watching",
    "so satisfying",
    "ok but why",
    "unexpected ending",
    "part 2 as requested",
    "had to share this",
    "no words",
    "the moment it happened",
    "watch till the end",
    "daily dose of happy",
    "rate this 1 to 10",
    "did not expect that",
    "story time",
    "new favourite thing",
)

Colour = tuple[str, tuple[int, int, int]]
# Each palette's colours fall in distinct cells of a 4-levels-per-channel colour quantisation, and the three
# palettes use disjoint cells (dark: levels 0-1, light: 2-3, saturated: 0 and 3), so colour histograms tell
# them apart.

TOP_COLOURS: tuple[Colour, ...] = (
    ("navy", (32, 32, 110)),
    ("maroon", (110, 32, 32)),
    ("forest", (32, 100, 32)),
    ("plum", (100, 32, 100)),
    ("teal", (32, 100, 100)),
    ("olive", (100, 100, 32)),
    ("slate", (90, 90, 100)),
)
"""Dark colours of the top half; the i-th level-1 node is painted with the i-th colour."""

BOTTOM_COLOURS: tuple[Colour, ...] = (
    ("peach", (230, 165, 160)),
    ("mint", (165, 230, 165)),
    ("lavender", (165, 165, 230)),
    ("cream", (230, 225, 165)),
    ("sky", (165, 225, 230)),
    ("pink", (230, 165, 225)),
    ("silver", (170, 170, 170)),
)
"""Light colours of the bottom half; the i-th child of a level-1 node is painted with the i-th colour."""

SIGNATURE_COLOURS: tuple[Colour, ...] = (
    ("red", (230, 30, 30)),
    ("yellow", (235, 230, 30)),
    ("blue", (30, 40, 230)),
    ("cyan", (30, 225, 235)),
    ("magenta", (225, 30, 225)),
    ("green", (30, 215, 40)),
    ("orange", (245, 140, 20)),
    ("black", (12, 12, 12)),
)
"""Saturated colours of the block and the accents; the i-th child of a level-2 node uses the i-th colour."""

LAYOUTS = ("left", "right", "top", "bottom")
"""Which half of the bottom-right quadrant the block covers; the i-th child of a level-3 node uses the i-th."""
