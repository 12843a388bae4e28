"""The project's own sample crawl: a small WARC written deterministically, for the demo and tests.

Every page here was written for tokenmill (no third-party content). The records exercise each
FineWeb stage: good English articles, the same kind of article in German, French, Spanish and
Chinese (langid), near-duplicate copies of one article on other sites (dedup), pages on a
blocklisted domain and subdomain and with banned words in the URL (urlfilter), boilerplate-heavy
and navigation-only pages and a page with no main text (extract), short and list-like pages
(quality), emails and IP addresses (pii), a PDF and a JSON response (read:not_html), plus the
request/warcinfo records a real crawler writes. Ids and dates are fixed, gzip mtimes are 0:
the file is byte-identical on every run.
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

DATE = "2024-05-01T12:00:{:02d}Z"

# ---- English articles: each a title and paragraphs (written for this project) -------------------
ARTICLES: dict[str, tuple[str, list[str]]] = {
    "bread": (
        "How to bake a simple loaf of bread",
        [
            "Baking bread at home is easier than most people think, and it needs only four ingredients: flour, water, salt and yeast.",
            "Start by mixing the flour and the salt in a large bowl, then add the yeast and pour in warm water a little at a time.",
            "Knead the dough for about ten minutes until it feels smooth and springs back when you press it with a finger.",
            "Leave the dough to rise in a warm place for an hour, covered with a damp towel so that the surface does not dry out.",
            "When it has doubled in size, shape it into a loaf, place it in a tin and let it rise again for thirty minutes.",
            "Bake the loaf in a hot oven for about forty minutes, until the crust is golden and the bottom sounds hollow when tapped.",
            "Let the bread cool on a rack before you cut it, because the crumb keeps cooking for a while after it leaves the oven.",
        ],
    ),
    "rivers": (
        "Why rivers meander across flat land",
        [
            "A river flowing across a wide plain rarely runs in a straight line for long, and the reason lies in how water moves sediment.",
            "Where the channel bends, the water on the outside of the curve flows faster and erodes the bank, while the inside collects sand and gravel.",
            "Over many years this process makes each bend grow wider, so that the river swings from side to side in a series of loops.",
            "Sometimes two loops come so close together that a flood cuts through the narrow neck of land between them.",
            "The old loop is then left behind as a curved lake, which geographers call an oxbow lake because of its shape.",
            "Engineers who straighten rivers to help shipping often find that the water soon begins to carve new bends of its own.",
            "Understanding these patterns helps planners decide where it is safe to build houses, roads and bridges near a river.",
        ],
    ),
    "bees": (
        "The quiet work of honey bees in a garden",
        [
            "Honey bees visit thousands of flowers every day, and in doing so they carry pollen from one plant to the next.",
            "This pollination is essential for many fruits and vegetables, including apples, cherries, pumpkins and almonds.",
            "A single colony can contain tens of thousands of worker bees, all of them daughters of one queen who lays the eggs.",
            "The workers divide their labour by age, with young bees cleaning the hive and older bees flying out to gather nectar.",
            "When a forager finds a rich patch of flowers, she returns to the hive and performs a dance that tells others where to go.",
            "Gardeners can help bees by planting a variety of flowers that bloom at different times from spring until autumn.",
            "Avoiding strong pesticides on flowering plants also protects the bees that depend on them for food.",
        ],
    ),
    "library": (
        "A short history of the public library",
        [
            "For most of history, books were rare and expensive, and only wealthy families or religious houses could own a collection.",
            "The printing press made books cheaper, but it still took centuries before ordinary people could borrow them for free.",
            "In the nineteenth century many towns opened public libraries paid for by local taxes and by generous donors.",
            "These libraries gave workers a quiet place to read, study and improve their education after a long day at work.",
            "Librarians developed catalogues and classification schemes so that readers could find a book among thousands on the shelves.",
            "Today a library lends not only books but also films, music and access to computers and the internet.",
            "Many people still describe the library as one of the few places where anyone can spend time without having to buy anything.",
        ],
    ),
    "bicycle": (
        "Keeping a bicycle in good working order",
        [
            "A bicycle that is looked after regularly is safer, faster and much more pleasant to ride than one that is neglected.",
            "The most important habit is to check the tyre pressure every week, because soft tyres make pedalling harder and puncture easily.",
            "Clean the chain with a dry cloth after wet rides and add a few drops of oil, then wipe away what is left on the outside.",
            "Test the brakes before every ride by squeezing each lever firmly and making sure the wheel stops without any delay.",
            "If the gears skip or rattle, a small turn of the adjuster on the cable is often enough to bring them back into line.",
            "Once a year it is worth taking the bicycle to a workshop, where a mechanic can replace worn parts before they fail.",
            "With this simple routine, a well made bicycle can give many years of reliable service in the city or the countryside.",
        ],
    ),
    "tides": (
        "What causes the ocean tides",
        [
            "Twice a day the sea rises and falls along most coasts, and this regular movement is known as the tide.",
            "The main cause is the gravity of the moon, which pulls on the oceans and raises a bulge of water on the side of the earth facing it.",
            "A second bulge forms on the opposite side of the planet, which is why most places see two high tides every day.",
            "The sun also pulls on the oceans, and when the sun and the moon line up the tides become stronger than usual.",
            "These strong tides are called spring tides, although they have nothing to do with the season of the year.",
            "When the sun and the moon pull at right angles to each other, the difference between high and low water is smaller.",
            "Sailors, fishermen and coastal engineers all rely on tide tables that predict these changes many months in advance.",
        ],
    ),
}

# ---- the same kind of content in other languages -----------------------------------------------------
FOREIGN: dict[str, tuple[str, str, list[str]]] = {
    "de": (
        "de",
        "Wie man ein einfaches Brot backt",
        [
            "Brot zu Hause zu backen ist einfacher, als viele Menschen denken, und man braucht nur Mehl, Wasser, Salz und Hefe.",
            "Zuerst vermischt man das Mehl mit dem Salz in einer großen Schüssel und gibt dann die Hefe und warmes Wasser dazu.",
            "Der Teig wird etwa zehn Minuten lang geknetet, bis er sich glatt anfühlt und bei Druck mit dem Finger zurückfedert.",
            "Danach lässt man ihn an einem warmen Ort eine Stunde lang gehen, abgedeckt mit einem feuchten Tuch.",
            "Das Brot wird etwa vierzig Minuten im heißen Ofen gebacken, bis die Kruste goldbraun ist und der Boden hohl klingt.",
        ],
    ),
    "fr": (
        "fr",
        "Pourquoi les rivières forment des méandres",
        [
            "Une rivière qui traverse une vaste plaine coule rarement en ligne droite, et la raison tient à la façon dont l'eau déplace les sédiments.",
            "Dans un virage, l'eau à l'extérieur de la courbe coule plus vite et érode la berge, tandis que l'intérieur accumule du sable.",
            "Au fil des années, chaque courbe s'élargit et la rivière se balance d'un côté à l'autre en formant une série de boucles.",
            "Parfois, une crue coupe le mince passage de terre entre deux boucles et laisse derrière elle un lac en forme de croissant.",
            "Comprendre ces phénomènes aide les urbanistes à choisir les endroits où il est prudent de construire près d'une rivière.",
        ],
    ),
    "es": (
        "es",
        "El trabajo silencioso de las abejas en el jardín",
        [
            "Las abejas visitan miles de flores cada día y, al hacerlo, llevan el polen de una planta a otra.",
            "Esta polinización es esencial para muchas frutas y verduras, como las manzanas, las cerezas y las almendras.",
            "Una sola colonia puede tener decenas de miles de obreras, todas hijas de una misma reina que pone los huevos.",
            "Cuando una abeja encuentra muchas flores, vuelve a la colmena y realiza una danza que indica a las demás adónde ir.",
            "Los jardineros pueden ayudar a las abejas plantando flores que florezcan en distintas épocas del año.",
        ],
    ),
    "zh": (
        "zh",
        "公共图书馆简史",
        [
            "在历史上的大部分时间里，书籍稀少而昂贵，只有富裕的家庭或寺院才能拥有藏书。",
            "印刷术让书籍变得便宜，但普通人能够免费借书仍然花了几百年的时间。",
            "十九世纪，许多城镇用地方税收和捐款建立了公共图书馆，让工人在下班后有一个安静的地方读书学习。",
            "图书馆员编制了目录和分类法，使读者能够在成千上万的藏书中找到需要的书。",
            "今天的图书馆不仅出借图书，还提供电影、音乐以及使用电脑和互联网的机会。",
        ],
    ),
}

NAV = "".join(f'<li><a href="/section/{i}">Section {i}</a></li>' for i in range(1, 41))
FOOTER = (
    "<footer><p>Copyright 2024 Example Media. All rights reserved.</p><p><a href='/privacy'>Privacy"
    "</a> | <a href='/terms'>Terms</a> | <a href='/cookies'>Cookie settings</a></p></footer>"
)
COOKIE = "<div class='cookie-banner'><p>We use cookies to improve your experience. Accept all cookies?</p></div>"


def article_html(
    title: str, paragraphs: list[str], lang: str = "en", boilerplate: bool = True, extra: str = ""
) -> str:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    chrome = f"<header><nav><ul>{NAV}</ul></nav></header>{COOKIE}" if boilerplate else ""
    side = (
        (
            "<aside><h3>Popular</h3><ul>"
            + "".join(f"<li><a href='/p/{i}'>Story {i}</a></li>" for i in range(12))
            + "</ul></aside>"
        )
        if boilerplate
        else ""
    )
    return (
        f"<!DOCTYPE html><html lang='{lang}'><head><meta charset='utf-8'><title>{title}</title></head>"
        f"<body>{chrome}<main><article><h1>{title}</h1>{body}{extra}</article></main>{side}"
        f"{FOOTER if boilerplate else ''}</body></html>"
    )


def sample_pages() -> list[dict]:
    """The sample crawl as records: {url, content_type, body (bytes), kind}."""
    pages: list[dict] = []

    def add(
        url: str, html: str | bytes, kind: str, content_type: str = "text/html; charset=utf-8"
    ) -> None:
        body = html.encode("utf-8") if isinstance(html, str) else html
        pages.append({"url": url, "content_type": content_type, "body": body, "kind": kind})

    for key, (title, paras) in ARTICLES.items():
        add(
            f"https://www.tokenmill-sample.org/articles/{key}",
            article_html(title, paras),
            "good_en",
        )
    # near-duplicates of the bread article: other sites, other chrome, one sentence changed
    t, p = ARTICLES["bread"]
    add(
        "https://recipes.tokenmill-sample.net/bread-basics",
        article_html(
            t,
            p[:5]
            + [
                "Bake the loaf in a very hot oven for forty minutes, until the crust is golden and the bottom sounds hollow."
            ]
            + p[6:],
            boilerplate=False,
        ),
        "near_duplicate",
    )
    add(
        "https://blog.tokenmill-sample.com/2024/05/simple-bread",
        article_html("Simple bread at home", p),
        "near_duplicate",
    )
    # pii: emails and public / private IPs inside a good article
    t, p = ARTICLES["library"]
    add(
        "https://www.tokenmill-sample.org/contact-library",
        article_html(
            t,
            p
            + [
                "Questions about the collection can be sent to the archive team at archive.team@tokenmill-sample.org or to help@example.net.",
                "Our catalogue server answers at 93.184.216.34 and 2001:4860:4860::8888, while the office network uses 192.168.1.20 internally.",
            ],
        ),
        "pii",
    )
    for code, (lang, title, paras) in FOREIGN.items():
        add(
            f"https://{code}.tokenmill-sample.org/artikel/{hashlib.sha1(title.encode()).hexdigest()[:6]}",
            article_html(title, paras, lang=lang),
            f"lang_{code}",
        )
    # urlfilter: blocklisted domain, blocklisted subdomain, banned words
    spam = article_html("Best deals", ARTICLES["tides"][1][:3])
    add("http://0-1sex.com/videos/page1.html", spam, "blocked_domain")
    add("http://amateurvideocamsex.blogspot.fr/2024/05/post.html", spam, "blocked_subdomain")
    add("https://tokenmill-sample.org/bondage/gallery", spam, "banned_word")
    add("https://tokenmill-sample.org/ass/babes/photos", spam, "soft_banned_words")
    # extract: navigation only, empty shell, boilerplate around a short text
    add(
        "https://www.tokenmill-sample.org/sitemap",
        "<html><body><nav><ul>" + NAV + "</ul></nav>" + FOOTER + "</body></html>",
        "navigation",
    )
    add(
        "https://www.tokenmill-sample.org/app",
        "<html><head><script>var app = 1;</script></head><body><div id='root'></div></body></html>",
        "empty_shell",
    )
    # quality: too short, list-like, repeated lines
    add(
        "https://www.tokenmill-sample.org/short",
        article_html(
            "Opening hours", ["We are open from nine to five on weekdays."], boilerplate=False
        ),
        "too_short",
    )
    add(
        "https://www.tokenmill-sample.org/list",
        article_html("Shopping list", [f"item {i}" for i in range(60)], boilerplate=False),
        "list_like",
    )
    add(
        "https://www.tokenmill-sample.org/repeat",
        article_html(
            "Buy now", ["Buy now and save money on every order today."] * 40, boilerplate=False
        ),
        "repetitive",
    )
    # more good English pages so the demo keeps a reasonable corpus
    for key, (title, paras) in list(ARTICLES.items())[1:]:
        add(
            f"https://news.tokenmill-sample.com/{key}/explained",
            article_html(f"{title}: explained", paras[::-1], boilerplate=True),
            "good_en_variant",
        )
    # read: non-HTML payloads
    add(
        "https://www.tokenmill-sample.org/report.pdf",
        b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n",
        "not_html",
        "application/pdf",
    )
    add(
        "https://api.tokenmill-sample.org/v1/items",
        b'{"items": [1, 2, 3]}',
        "not_html",
        "application/json",
    )
    # a latin-1 page declared in its header (decoding)
    add(
        "https://fr.tokenmill-sample.org/latin1",
        article_html(*FOREIGN["fr"][1:], lang="fr").encode("latin-1", "replace"),
        "latin1",
        "text/html; charset=iso-8859-1",
    )
    return pages


def _member(headers: list[tuple[str, str]], block: bytes) -> bytes:
    head = "WARC/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
    head += f"Content-Length: {len(block)}\r\n\r\n"
    return gzip.compress(head.encode("utf-8") + block + b"\r\n\r\n", mtime=0)


def record_id(n: int, kind: str) -> str:
    return f"<urn:uuid:{hashlib.md5(f'tokenmill-sample-{kind}-{n}'.encode()).hexdigest()}>"


def build_warc_bytes(pages: list[dict] | None = None) -> bytes:
    """The sample WARC (per-record gzip members, as crawlers write them)."""
    pages = sample_pages() if pages is None else pages
    info = b"software: tokenmill sample_pages\r\nformat: WARC File Format 1.0\r\n"
    out = [
        _member(
            [
                ("WARC-Type", "warcinfo"),
                ("WARC-Date", DATE.format(0)),
                ("WARC-Record-ID", record_id(0, "warcinfo")),
                ("Content-Type", "application/warc-fields"),
            ],
            info,
        )
    ]
    for i, page in enumerate(pages, start=1):
        date = DATE.format(i % 60)
        req = f"GET / HTTP/1.1\r\nHost: {page['url'].split('/')[2]}\r\nUser-Agent: tokenmill-sample\r\n\r\n".encode()
        out.append(
            _member(
                [
                    ("WARC-Type", "request"),
                    ("WARC-Target-URI", page["url"]),
                    ("WARC-Date", date),
                    ("WARC-Record-ID", record_id(i, "request")),
                    ("Content-Type", "application/http; msgtype=request"),
                ],
                req,
            )
        )
        http = (
            f"HTTP/1.1 200 OK\r\nContent-Type: {page['content_type']}\r\n"
            f"Content-Length: {len(page['body'])}\r\n\r\n"
        ).encode() + page["body"]
        out.append(
            _member(
                [
                    ("WARC-Type", "response"),
                    ("WARC-Target-URI", page["url"]),
                    ("WARC-Date", date),
                    ("WARC-Record-ID", record_id(i, "response")),
                    ("Content-Type", "application/http; msgtype=response"),
                ],
                http,
            )
        )
    return b"".join(out)


def write_sample_warc(path: str | Path) -> Path:
    """Write the sample WARC to ``path`` (atomically) and return the path."""
    from pipelines.io import atomic_write_bytes

    path = Path(path)
    atomic_write_bytes(path, build_warc_bytes())
    return path
