"""Agent conversations for the demo model (issue #21), imported by tools/demo_data.py.

Three kinds, in OpenAI chat format like the rest of demo_data.py:

  tool     one of ~20 made-up tools (weather, exchange rates, unit conversions, ...),
           offered among up to three others in a random order: the model reads the
           offered names and descriptions, calls the one the question is about with the
           arguments copied from the question, and answers from its result. Four domains
           (and their names) never appear in the train split: the held-out split asks
           only those, so an eval measures tools the model has never seen.
  volume   the examples/agents multi-tool flow: a container's dimensions, a server-side
           `math` call for the product, a client `convert_volume` call on its result, an
           answer that quotes the converted figure; or a volume converted directly.
  repo     the examples/agents repository flow on made-up source trees: list the root,
           search for what the question is about (a shorter word when the phrase has no
           hit), answer citing the paths found; or read a named file and quote its start.

Tool results are formatted as the examples' tools format them (examples/agents/*.mjs),
numbers as JavaScript prints them.
"""
import functools
import json
import os
import random
import re
import sysconfig
import zlib

from demo_tools import INTERP_TOOL, MATH_TOOL, call

CITIES = ["Paris", "Berlin", "Tokyo", "Lagos", "Lima", "Oslo", "Cairo", "Denver", "Hanoi",
          "Quito", "Perth", "Dublin", "Seoul", "Austin", "Porto", "Nairobi", "Zurich", "Osaka",
          "Madrid", "Boston", "Delhi", "Kyiv", "Havana", "Tunis"]
NAMES = ["Ada", "Linus", "Grace", "Ken", "Barbara", "Dennis", "Margaret", "Guido", "Bjarne",
         "Frances", "Edsger", "Radia", "Alan", "Donald", "Leslie", "Niklaus"]
WORDS = {"serendipity": "finding good things by chance",
         "ephemeral": "lasting a very short time", "ubiquitous": "found everywhere",
         "laconic": "using very few words", "meticulous": "very careful about details",
         "resilient": "able to recover quickly", "candid": "honest and direct",
         "arcane": "known only to a few", "verbose": "using more words than needed",
         "frugal": "careful with money"}


def js_num(v):
    """A number as JavaScript's String() prints it (integers without a point)."""
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e21:
        return str(int(v))
    return repr(v)


def num_arg(v):
    """An argument value as a client would send it: integral floats as integers."""
    return int(v) if isinstance(v, float) and v.is_integer() else v


def rnum(rng, lo=1, hi=500):
    """A positive number as people write them: an integer or one or two decimals."""
    r = rng.random()
    if r < 0.5:
        return rng.randint(lo, hi)
    return round(rng.uniform(lo, hi), 1 if r < 0.8 else 2)


def unit_domain(kind, units, words):
    """A unit-conversion tool: `units` {code: size in one common unit}, `words` {code: [names]}."""
    codes = list(units)

    def args(rng):
        a, b = rng.sample(codes, 2)
        return {"value": rnum(rng), "from": a, "to": b}

    def result(a):
        v = a["value"] * units[a["from"]] / units[a["to"]]
        return f"{js_num(a['value'])} {a['from']} = {js_num(v)} {a['to']}"

    def question(rng, a, heldout):
        fw, tw = rng.choice(words[a["from"]]), rng.choice(words[a["to"]])
        v = js_num(a["value"])
        qs = ([f"How many {tw} is {v} {fw}?", f"Convert {v} {fw} to {tw}.",
               f"What is {v} {fw} in {tw}?", f"{v} {fw} in {tw}, please.",
               f"I have {v} {fw}. How much is that in {tw}?"] if not heldout else
              [f"Express {v} {fw} as {tw}.", f"{v} {fw} equals how many {tw}?"])
        return rng.choice(qs)

    props = {"value": {"type": "number"}, "from": {"type": "string", "enum": codes},
             "to": {"type": "string", "enum": codes}}
    return {"names": [f"convert_{kind}", f"{kind}_converter", f"convert_{kind}_units"],
            "description": f"Convert a {kind} between units: " + ", ".join(codes),
            "props": props, "required": ["value", "from", "to"], "args": args,
            "result": result, "question": question}


def converted_figure(result):
    """The converted number in a conversion tool's result ("V from = X to" -> "X")."""
    return result.split(" = ")[1].split(" ")[0]


def simple_domain(names, description, props, args, question, result):
    return {"names": names, "description": description,
            "props": {k: {"type": t} if isinstance(t, str) else t for k, t in props.items()},
            "required": list(props), "args": args, "result": result,
            "question": lambda rng, a, heldout: rng.choice(question(a))}


def domains():
    """name -> domain. The held-out ones (HELDOUT_DOMAINS) are never trained on."""
    city = lambda rng: {"city": rng.choice(CITIES)}  # noqa: E731
    d = {
        "weather": simple_domain(
            ["get_weather", "current_weather", "weather_lookup"],
            "Get the current weather of a city", {"city": "string"}, city,
            lambda a: [f"What's the weather in {a['city']}?", f"Is it raining in {a['city']}?",
                       f"How warm is it in {a['city']} right now?"],
            lambda a: f"{a['city']}: {len(a['city']) * 3 - 4} C, "
                      + ["clear", "light rain", "cloudy", "snow"][len(a['city']) % 4]),
        "stock": simple_domain(
            ["get_stock_price", "stock_quote", "lookup_share_price"],
            "Latest price of a stock by its ticker symbol", {"symbol": "string"},
            lambda rng: {"symbol": "".join(rng.choice("ABCDEFGHKLMNPRSTVWXZ")
                                           for _ in range(rng.randint(2, 4)))},
            lambda a: [f"What is {a['symbol']} trading at?", f"Price of {a['symbol']} stock?",
                       f"How much does one {a['symbol']} share cost?"],
            lambda a: f"{a['symbol']}: {sum(map(ord, a['symbol'])) % 400 + 12}.{len(a['symbol'])}5 USD"),
        "time": simple_domain(
            ["get_local_time", "current_time", "time_in_city"],
            "The current local time in a city", {"city": "string"}, city,
            lambda a: [f"What time is it in {a['city']}?", f"Tell me the local time in {a['city']}.",
                       f"Is it late in {a['city']} now?"],
            lambda a: f"{len(a['city']) + 7:02d}:{len(a['city']) * 7 % 60:02d} in {a['city']}"),
        "population": simple_domain(
            ["city_population", "get_population"], "How many people live in a city",
            {"city": "string"}, city,
            lambda a: [f"How many people live in {a['city']}?", f"Population of {a['city']}?",
                       f"How big is {a['city']} by population?"],
            lambda a: f"{a['city']}: {sum(map(ord, a['city'])) * 1371} inhabitants"),
        "distance": simple_domain(
            ["get_distance", "distance_between", "travel_distance"],
            "Road distance between two cities in km", {"origin": "string", "destination": "string"},
            lambda rng: dict(zip(["origin", "destination"], rng.sample(CITIES, 2))),
            lambda a: [f"How far is it from {a['origin']} to {a['destination']}?",
                       f"Distance from {a['origin']} to {a['destination']}?",
                       f"How many km between {a['origin']} and {a['destination']}?"],
            lambda a: f"{a['origin']} to {a['destination']}: "
                      f"{(sum(map(ord, a['origin'] + a['destination'])) * 7) % 9000 + 120} km"),
        "email": simple_domain(
            ["send_email", "email_send", "compose_and_send_email"],
            "Send an email with a subject to an address", {"to": "string", "subject": "string"},
            lambda rng: {"to": rng.choice(NAMES).lower() + "@example.com",
                         "subject": rng.choice(["Meeting", "Invoice", "Lunch", "Release notes",
                                                "Weekly report", "Holiday"])},
            lambda a: [f"Send an email to {a['to']} with the subject {a['subject']}.",
                       f"Email {a['to']} about \"{a['subject']}\".",
                       f"Please mail {a['to']}, subject: {a['subject']}"],
            lambda a: f"sent to {a['to']} (message id {len(a['to']) * 97})"),
        "event": simple_domain(
            ["create_event", "add_calendar_event", "schedule_event"],
            "Add an event to the calendar on a date", {"title": "string", "date": "string"},
            lambda rng: {"title": rng.choice(["Dentist", "Team sync", "Gym", "Code review",
                                              "Birthday party", "Flight"]),
                         "date": f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"},
            lambda a: [f"Add {a['title']} to my calendar on {a['date']}.",
                       f"Schedule \"{a['title']}\" for {a['date']}.",
                       f"Put {a['title']} in the calendar, {a['date']}."],
            lambda a: f"created '{a['title']}' on {a['date']}"),
        "flight": simple_domain(
            ["flight_status", "get_flight_status", "check_flight"],
            "Status of a flight by its number", {"flight": "string"},
            lambda rng: {"flight": rng.choice(["LH", "BA", "AF", "UA", "KL", "QF"])
                         + str(rng.randint(10, 999))},
            lambda a: [f"Is flight {a['flight']} on time?", f"Status of {a['flight']}?",
                       f"Has {a['flight']} landed yet?"],
            lambda a: f"{a['flight']}: " + ["on time", "delayed 25 min", "landed", "boarding"][
                int(a['flight'][2:]) % 4]),
        "user": simple_domain(
            ["find_user", "lookup_user", "get_user_by_email"],
            "Find a user account by email address", {"email": "string"},
            lambda rng: {"email": rng.choice(NAMES).lower() + str(rng.randint(1, 99)) + "@example.org"},
            lambda a: [f"Who has the account {a['email']}?", f"Look up the user {a['email']}.",
                       f"Find the account for {a['email']}."],
            lambda a: f"user {len(a['email']) * 131}: {a['email'].split('@')[0].rstrip('0123456789').title()}"),
        "order": simple_domain(
            ["order_status", "get_order", "track_order"],
            "Status of a shop order by its id", {"order_id": "string"},
            lambda rng: {"order_id": f"A-{rng.randint(1000, 99999)}"},
            lambda a: [f"Where is my order {a['order_id']}?", f"Status of order {a['order_id']}?",
                       f"Has order {a['order_id']} shipped?"],
            lambda a: f"order {a['order_id']}: " + ["shipped", "delivered", "packing", "cancelled"][
                int(a['order_id'][2:]) % 4]),
        "define": simple_domain(
            ["define_word", "dictionary_lookup", "word_definition"],
            "The meaning of an English word", {"word": "string"},
            lambda rng: {"word": rng.choice(list(WORDS))},
            lambda a: [f"What does '{a['word']}' mean?", f"Define {a['word']}.",
                       f"Meaning of the word {a['word']}?"],
            lambda a: f"{a['word']}: {WORDS[a['word']]}"),
        "words": simple_domain(
            ["count_words", "word_counter"], "Count the words of a text", {"text": "string"},
            lambda rng: {"text": " ".join(rng.sample(list(WORDS) + ["the", "cat", "sat", "on",
                                                                    "a", "warm", "mat"],
                                                     rng.randint(2, 7)))},
            lambda a: [f"How many words are in \"{a['text']}\"?",
                       f"Count the words: {a['text']}"],
            lambda a: str(len(a["text"].split()))),
        "length": unit_domain("length", {"m": 1, "km": 1000, "cm": 0.01, "ft": 0.3048,
                                         "mi": 1609.344, "in": 0.0254},
                              {"m": ["meters", "metres", "m"], "km": ["kilometers", "km"],
                               "cm": ["centimeters", "cm"], "ft": ["feet", "ft"],
                               "mi": ["miles"], "in": ["inches"]}),
        "mass": unit_domain("mass", {"kg": 1, "g": 0.001, "lb": 0.45359237, "oz": 0.028349523125},
                            {"kg": ["kilograms", "kg"], "g": ["grams", "g"],
                                   "lb": ["pounds", "lb"], "oz": ["ounces", "oz"]}),
        "volume": unit_domain("volume", VOLUME_UNITS, VOLUME_WORDS),
        # Held out: never in the train split.
        "air": simple_domain(
            ["get_air_quality", "air_quality_index"], "The air quality index of a city",
            {"city": "string"}, city,
            lambda a: [f"How is the air quality in {a['city']}?", f"Is the air clean in {a['city']}?"],
            lambda a: f"{a['city']}: AQI {len(a['city']) * 9} (" + ["good", "moderate"][len(a['city']) % 2] + ")"),
        "parcel": simple_domain(
            ["track_parcel", "parcel_tracking"], "Where a parcel is, by tracking number",
            {"tracking_number": "string"},
            lambda rng: {"tracking_number": f"1Z{rng.randint(100000, 999999)}"},
            lambda a: [f"Where is parcel {a['tracking_number']}?",
                       f"Track my parcel {a['tracking_number']}."],
            lambda a: f"{a['tracking_number']}: in transit, arrives in {int(a['tracking_number'][2:]) % 5 + 1} days"),
        "area": unit_domain("area", {"m2": 1, "ft2": 0.09290304, "ha": 10000, "acre": 4046.8564224},
                            {"m2": ["square meters"], "ft2": ["square feet"],
                                   "ha": ["hectares"], "acre": ["acres"]}),
        "capital": simple_domain(
            ["get_capital", "capital_city"], "The capital city of a country",
            {"country": "string"},
            lambda rng: {"country": rng.choice(["France", "Peru", "Kenya", "Japan", "Chile", "Norway"])},
            lambda a: [f"What is the capital of {a['country']}?", f"Capital city of {a['country']}?"],
            lambda a: {"France": "Paris", "Peru": "Lima", "Kenya": "Nairobi", "Japan": "Tokyo",
                       "Chile": "Santiago", "Norway": "Oslo"}[a["country"]]),
    }
    return d


VOLUME_UNITS = {"m3": 1, "l": 1e-3, "us_gal": 3.785411784e-3, "ft3": 0.028316846592}
VOLUME_WORDS = {"m3": ["cubic meters", "cubic metres", "m3"], "l": ["liters", "litres"],
                "us_gal": ["US gallons", "gallons"], "ft3": ["cubic feet"]}
HELDOUT_DOMAINS = {"air", "parcel", "area", "capital"}
DOMAINS = domains()


PREFIXES = ["", "", "", "get_", "fetch_", "api_", "my_", "query_", "do_", "svc_"]
SUFFIXES = ["", "", "", "_v2", "_now", "_info", "_tool", "_api", "_lookup", "_fn"]


def tool_name(rng, dom):
    """One of the domain's names, often with a prefix or suffix nobody could guess: the
    model has to copy the name it calls from the offered list."""
    name = rng.choice(dom["names"])
    if rng.random() < 0.5:
        pre = rng.choice(PREFIXES)
        name = (pre if not name.startswith(pre) else "") + name + rng.choice(SUFFIXES)
    return name


def tool_spec(dom, name):
    return {"type": "function", "function": {
        "name": name, "description": dom["description"],
        "parameters": {"type": "object", "properties": dom["props"], "required": dom["required"]}}}


def split_domains(split):
    """The domains a split asks about: the held-out ones, or all the others."""
    return [k for k in DOMAINS if (k in HELDOUT_DOMAINS) == (split == "heldout")]


def offered(rng, target, split):
    """0-3 tools of the split's other domains, to offer beside the target."""
    pool = [k for k in split_domains(split) if k != target]
    return [tool_spec(DOMAINS[k], tool_name(rng, DOMAINS[k]))
            for k in rng.sample(pool, rng.randint(0, min(3, len(pool))))]


SYSTEMS = [None, None, "You are a helpful assistant with tools.",
           "Use the tools when they help, then answer briefly.",
           "You are an agent. Call tools to find facts; answer from their results."]


def with_system(rng, messages, system=None):
    s = system if system is not None else rng.choice(SYSTEMS)
    return ([{"role": "system", "content": s}] if s else []) + messages


def conv_tool(rng, split):
    """(messages, tools): one tool call picked from several offered tools."""
    key = rng.choice(split_domains(split))
    dom = DOMAINS[key]
    name = tool_name(rng, dom)
    a = dom["args"](rng)
    target = tool_spec(dom, name)
    tools = offered(rng, key, split)
    tools.insert(rng.randint(0, len(tools)), target)
    r = dom["result"](a)
    msgs = with_system(rng, [
        {"role": "user", "content": dom["question"](rng, a, split == "heldout")},
        {"role": "assistant", "content": "",
         "tool_calls": [call(name, {k: num_arg(v) for k, v in a.items()})]},
        {"role": "tool", "content": r},
        {"role": "assistant", "content": rng.choice(
            ["{r}.", "Here it is: {r}.", "The {n} tool says: {r}.", "Result: {r}."]).format(
                r=r, n=name)},
    ])
    return msgs, tools


def volume_tool(rng):
    return tool_spec(DOMAINS["volume"], "convert_volume" if rng.random() < 0.6
                     else tool_name(rng, DOMAINS["volume"]))


def dims(rng):
    return [round(rng.uniform(0.2, 9.5), rng.choice([0, 1, 1, 2])) or 1.0 for _ in range(3)]


def conv_volume(rng, split):
    """(messages, tools): the multi-tool agent's flow (math, then convert_volume)."""
    vt = volume_tool(rng)
    vname = vt["function"]["name"]
    tools = [vt] + rng.sample([MATH_TOOL, INTERP_TOOL], 2)
    rng.shuffle(tools)
    to = rng.choice(["l", "us_gal", "ft3"])
    tw = rng.choice(VOLUME_WORDS[to])
    if rng.random() < 0.25:  # a volume given: convert it directly
        args = {"value": num_arg(float(rnum(rng, 1, 90))), "from": rng.choice(["m3", "l", "ft3"]),
                "to": to}
        if args["from"] == to:
            args["from"] = "m3"
        conv = DOMAINS["volume"]["result"](args)
        q = DOMAINS["volume"]["question"](rng, args, split == "heldout")
        return with_system(rng, [
            {"role": "user", "content": q},
            {"role": "assistant", "content": "", "tool_calls": [call(vname, args)]},
            {"role": "tool", "content": conv},
            {"role": "assistant", "content": "That is " + conv + "."},
        ]), tools
    d = dims(rng)
    ds = [js_num(float(x)) for x in d]
    thing = rng.choice(["tank", "box", "pool", "container", "room", "crate", "trough", "bin"])
    if split == "train":
        q = rng.choice([
            f"A {thing} is {ds[0]} m by {ds[1]} m by {ds[2]} m. How many {tw} does it hold?",
            f"How many {tw} in {ds[0]} x {ds[1]} x {ds[2]} m?",
            f"My {thing} measures {ds[0]} x {ds[1]} x {ds[2]} meters. What is its volume in {tw}?",
            f"How many {tw} fit in a {thing} of {ds[0]} m x {ds[1]} m x {ds[2]} m?"])
    else:
        q = rng.choice([
            f"What volume, in {tw}, has a {thing} sized {ds[0]} by {ds[1]} by {ds[2]} m?",
            f"Capacity in {tw} of a {ds[0]} m x {ds[1]} m x {ds[2]} m {thing}?"])
    sep = rng.choice(["*", " * "])
    expr = sep.join(ds)
    prod = d[0] * d[1] * d[2]
    m3 = js_num(prod)
    args = {"value": num_arg(prod), "from": "m3", "to": to}
    conv = DOMAINS["volume"]["result"](args)
    out = converted_figure(conv)
    system = rng.choice([None, "Compute with the math tool or code_interpreter, convert units "
                         "with " + vname + ".", "Use the tools to compute, then answer."])
    msgs = with_system(rng, [
        {"role": "user", "content": q},
        {"role": "assistant", "content": "", "tool_calls": [call("math", {"expression": expr})]},
        {"role": "tool", "content": m3},
        {"role": "assistant", "content": "", "tool_calls": [call(vname, args)]},
        {"role": "tool", "content": conv},
        {"role": "assistant", "content": rng.choice([
            "It holds {o} {w} ({m} m3).", "{m} m3, which is {o} {w}.",
            "The volume is {m} m3 = {o} {w}."]).format(o=out, w=tw, m=m3)},
    ], system)
    return msgs, tools


# The topics of the made-up repositories: (topic phrase, search word, the line a file that
# mentions it says, what it says it does). The paths are random (source_path).
TOPICS = [
    ("HTTP server", "HTTP", "// The HTTP server: accepts connections and serves {x}.",
     ["chat completions", "the REST API", "static files", "health checks"]),
    ("tokenizer", "tokenizer", "# The tokenizer splits text into {x}.",
     ["tokens", "byte pairs", "words"]),
    ("config parser", "config", "// config parser: reads {x} from the TOML file",
     ["the settings", "ports and paths"]),
    ("database layer", "database", "/// The database layer keeps {x} in SQLite.",
     ["users", "sessions", "orders"]),
    ("scheduler", "scheduler", "// The scheduler picks {x} for each step.",
     ["the requests", "the sequences"]),
    ("command line", "command", "/* command line: parses {x} */",
     ["the options", "flags and arguments"]),
    ("login page", "login", "// login page: checks {x}", ["the password", "user sessions"]),
    ("cache", "cache", "# The cache keeps {x} in memory.", ["recent results", "pages"]),
    ("websocket handler", "websocket", "// websocket handler: streams {x}",
     ["tokens", "events", "messages"]),
    ("logging", "log", "// logging: writes {x} to stderr", ["errors", "JSON lines"]),
    ("metrics endpoint", "metrics", "// metrics endpoint: exports {x} for Prometheus",
     ["counters", "latencies"]),
    ("image resizer", "resize", "# image resizer: scales {x}", ["photos", "thumbnails"]),
    ("job queue", "queue", "# job queue: runs {x} in the background", ["emails", "reports"]),
    ("parser", "parse", "// The parser turns {x} into a syntax tree.",
     ["source files", "expressions"]),
]
# Lines around a hit that mention the term too (other files, no help to the answer).
NOISE = ["{p}:{n}: // see the {t} above", "{p}:{n}: # TODO: test the {t}",
         "{p}:{n}:   {t} = None", "{p}:{n}: - the {t}, in short"]
FILLER_DIRS = ["src/", "lib/", "tests/", "docs/", "scripts/", "tools/", "examples/", "third_party/",
               "build/", "assets/", "include/"]
FILLER_FILES = ["README.md", "LICENSE", "CMakeLists.txt", "Makefile", "setup.py", "package.json",
                ".gitignore", "go.mod", "Cargo.toml", "pyproject.toml"]

REPO_TOOLS = {
    "list": [("list_files", "List the entries of a folder of the repository (folders end with /)"),
             ("list_dir", "List a directory of the project (folders end with /)")],
    "read": [("read_file", "Read the start of a file of the repository (at most 4 KiB)"),
             ("open_file", "Return the first lines of a file in the project")],
    "search": [("search", "Find a text in the repository: up to 30 matching lines as path:line: text"),
               ("grep", "Search the project for a string; prints path:line: text")],
}
REPO_SYSTEMS = ["You analyse a source repository with the tools given. Cite the paths you used.",
                "Answer questions about the code base using the tools. Name the files.", None]


def repo_tools(rng):
    """(tool specs in a random order, {role: name})."""
    names, specs = {}, []
    pick = rng.randint(0, 1)  # one naming family per conversation, mostly
    for role, opts in REPO_TOOLS.items():
        n, desc = opts[pick if rng.random() < 0.8 else 1 - pick]
        names[role] = n
        key = "text" if role == "search" else "path"
        specs.append({"type": "function", "function": {
            "name": n, "description": desc,
            "parameters": {"type": "object", "properties": {key: {"type": "string"}},
                           "required": [key]}}})
    rng.shuffle(specs)
    return specs, names


DIR_WORDS = ["src", "lib", "net", "core", "server", "app", "pkg", "internal", "web", "api",
             "engine", "util", "common", "backend", "service", "modules", "components", "runtime",
             "io", "http", "handlers", "platform", "base", "impl", "cmd", "crates", "packages"]
STEM_WORDS = ["main", "impl", "routes", "handler", "core", "server", "client", "base", "api",
              "io", "utils", "service", "manager", "worker", "conn", "loop", "types", "store"]
EXTS = [".cpp", ".h", ".py", ".go", ".rs", ".ts", ".js", ".c", ".java", ".md", ".mjs", ".kt"]


def source_path(rng, word):
    """A path nobody could guess: random folders, a stem with or without the topic word."""
    parts = rng.sample(DIR_WORDS, rng.randint(1, 3))
    stem = "_".join(rng.sample(STEM_WORDS, rng.randint(1, 2)))
    if rng.random() < 0.6:
        stem = rng.choice([f"{word.lower()}_{stem}", f"{stem}_{word.lower()}", word.lower()])
    return "/".join(parts) + "/" + stem + rng.choice(EXTS)


SKIP = {".git", "node_modules", "build", "build-asan", "__pycache__"}


@functools.lru_cache(maxsize=None)
def tree_files(root):
    """The files under root in the order examples/agents/repo_agent.mjs's search walks them
    (sorted here; depth at most 6; SKIP left out), as paths relative to root."""
    out = []

    def walk(d, depth):
        if depth > 6:
            return
        for e in sorted(os.scandir(d), key=lambda e: e.name):
            if e.name in SKIP:
                continue
            if e.is_dir(follow_symlinks=False):
                walk(e.path, depth + 1)
            elif e.is_file(follow_symlinks=False):
                out.append(os.path.relpath(e.path, root))
    walk(root, 0)
    return tuple(out)


@functools.lru_cache(maxsize=4096)
def file_lines(path):
    try:
        if os.path.getsize(path) > 1 << 20:
            return ()
        with open(path, encoding="utf-8") as f:
            return tuple(f.read().split("\n"))
    except (UnicodeDecodeError, OSError):
        return ()


def search_tree(root, text):
    """What repo_agent.mjs's `search` returns for text under root."""
    hits = []
    for rel in tree_files(root):
        for i, line in enumerate(file_lines(os.path.join(root, rel))):
            if len(hits) < 30 and text in line:
                hits.append(f"{rel}:{i + 1}: {line.strip()[:160]}")
        if len(hits) >= 30:
            break
    return "\n".join(hits) or f"no line contains {json.dumps(text)}"


def package_dirs(base):
    """The Python packages (folders with an __init__.py) directly under base."""
    try:
        return [e.path for e in os.scandir(base) if e.is_dir() and e.name not in SKIP
                and not e.name.startswith(("test", "site-", "dist-", "idle", "config-", "_"))
                and os.path.exists(os.path.join(e.path, "__init__.py"))]
    except OSError:
        return []


def file_count_between(root, low, high):
    """Whether root holds low to high files (SKIP folders left out; stops counting early)."""
    n = 0
    for _, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIP]
        n += len(files)
        if n > high:
            return False
    return n >= low


@functools.lru_cache(maxsize=1)
def source_trees():
    """Real source trees to search: the packages of this Python's standard library and of
    its installed libraries (site-packages, Debian's dist-packages), those of 5 to 800
    files. Many trees, so that the model cannot learn their paths by heart and has to copy
    them from the search result. The installed libraries differ between machines, so the
    same seed gives the same data only where the same packages are installed."""
    bases = {sysconfig.get_paths()[k] for k in ("stdlib", "purelib", "platlib")}
    bases.add("/usr/lib/python3/dist-packages")
    trees = {t for b in sorted(bases) for t in package_dirs(b)}
    return tuple(sorted(t for t in trees if file_count_between(t, 5, 800)))


def cite_first(lines):
    """The first three matches of a search result (path:line: text lines) as "path (line
    N)" joined, the first match's path, and its text."""
    first = [(ln.split(":")[0], ln.split(":")[1]) for ln in lines[:3]]
    cited = ", ".join(f"{p} (line {n})" for p, n in first)
    return cited, first[0][0], lines[0].split(": ", 1)[1]


@functools.lru_cache(maxsize=None)
def tree_listing(root):
    """What repo_agent.mjs's `list_files .` returns for root."""
    return "\n".join(sorted(e.name + ("/" if e.is_dir() else "") for e in os.scandir(root)
                            if e.name not in SKIP)[:200])


@functools.lru_cache(maxsize=2)
def split_trees(split):
    """The source trees of a split: a fifth of them (by a hash of the name) held out."""
    return [t for t in source_trees()
            if (zlib.crc32(os.path.basename(t).encode()) % 5 == 0) == (split == "heldout")]


DEF_RE = re.compile(r"^\s*(?:def|class)\s+([A-Za-z_][A-Za-z0-9_]{3,})")


def conv_repo_real(rng, split, root):
    """The repository flow on a real tree: list it, search a name defined in it, answer
    citing the first matches (path and line, copied from the real result)."""
    specs, names = repo_tools(rng)
    files = [f for f in tree_files(root) if f.endswith(".py")]
    defs = []
    for _ in range(8):
        lines = file_lines(os.path.join(root, rng.choice(files)))
        defs += [m.group(1) for m in map(DEF_RE.match, lines) if m]
        if defs:
            break
    if not defs:
        return None
    term = rng.choice(defs)
    listing = tree_listing(root)
    found = search_tree(root, term)
    if split == "train":
        q = rng.choice([f"Where is {term} defined?", f"Which files use {term}?",
                        f"Find {term} in this repository.", f"Where is {term} implemented?"])
    else:
        q = rng.choice([f"In which files does {term} appear?", f"Locate {term}, please."])
    cited, first_path, text = cite_first(found.split("\n"))
    msgs = [{"role": "user", "content": q},
            {"role": "assistant", "content": "", "tool_calls": [call(names["list"], {"path": "."})]},
            {"role": "tool", "content": listing},
            {"role": "assistant", "content": "", "tool_calls": [call(names["search"], {"text": term})]},
            {"role": "tool", "content": found},
            {"role": "assistant", "content": rng.choice([
                "{t} appears in {c}. {p} says: {x}", "Found {c}. {p}: {x}",
                "Matches for {t}: {c}. First: {x}"]).format(t=term, c=cited, p=first_path,
                                                            x=text[:80])}]
    return with_system(rng, msgs, rng.choice(REPO_SYSTEMS)), specs


def conv_repo(rng, split):
    """(messages, tools): half the time the flow on a real source tree (conv_repo_real); else
    list a made-up root, search, answer citing the paths found (copied from the search
    result: they are random); or read a named file and quote its first line."""
    trees = split_trees(split)
    if trees and rng.random() < 0.5:
        conv = conv_repo_real(rng, split, rng.choice(trees))
        if conv:
            return conv
    specs, names = repo_tools(rng)
    phrase, word, line, xs = rng.choice(TOPICS)
    said = line.format(x=rng.choice(xs))
    paths = [source_path(rng, word) for _ in range(rng.randint(1, 4))]
    system = rng.choice(REPO_SYSTEMS)
    if rng.random() < 0.2:  # a named file: read it, quote its first line
        p = paths[0]
        q = rng.choice([f"What does {p} do?", f"Read {p} and tell me what it is for.",
                        f"Summarize {p}."])
        return with_system(rng, [
            {"role": "user", "content": q},
            {"role": "assistant", "content": "", "tool_calls": [call(names["read"], {"path": p})]},
            {"role": "tool", "content": said + "\n" + "\n".join(
                rng.sample(["", "#include <string>", "import os", "package main", "use std::fs;",
                            "const x = 1;"], 2))},
            {"role": "assistant", "content": f"{p} starts with: {said}"},
        ], system), specs
    tops = sorted({p.split("/")[0] + "/" for p in paths}
                  | {d + "/" for d in rng.sample(DIR_WORDS, rng.randint(1, 12))}
                  | set(rng.sample(FILLER_DIRS, rng.randint(1, 6)))
                  | set(rng.sample(FILLER_FILES, rng.randint(1, 6))))
    if split == "train":
        q = rng.choice([f"Which folders hold the {phrase}?", f"Where is the {phrase} implemented?",
                        f"Which folders hold the {phrase}, and what does it do?",
                        f"Find the {phrase} in this repository.",
                        f"Which files define the {phrase}?"])
    else:
        q = rng.choice([f"In which files does the {phrase} live?",
                        f"Locate the {phrase} code, please."])
    msgs = [{"role": "user", "content": q},
            {"role": "assistant", "content": "", "tool_calls": [call(names["list"], {"path": "."})]},
            {"role": "tool", "content": "\n".join(tops)}]
    term = phrase
    if rng.random() < 0.3 and phrase != word:  # the phrase has no hit: a shorter word then
        msgs += [{"role": "assistant", "content": "",
                  "tool_calls": [call(names["search"], {"text": phrase})]},
                 {"role": "tool", "content": f"no line contains {json.dumps(phrase)}"}]
        term = word
        said = said.replace(phrase, word + " code")
    lines = [f"{p}:{rng.randint(1, 300)}: {said}" for p in paths]
    lines += [rng.choice(NOISE).format(p=source_path(rng, rng.choice(STEM_WORDS)), n=rng.randint(1, 400), t=term)
              for _ in range(rng.choice([0, 0, 1, 2, 4, 8, 16]))]
    rng.shuffle(lines)
    msgs += [{"role": "assistant", "content": "", "tool_calls": [call(names["search"], {"text": term})]},
             {"role": "tool", "content": "\n".join(lines)}]
    cited, first_path, text = cite_first(lines)
    text = text.lstrip("/#* ").rstrip("*/ ").strip()
    msgs.append({"role": "assistant", "content": rng.choice([
        "The {t} appears in {c}. {p} says: {x}", "Found {c}. {p}: {x}",
        "Matches for the {t}: {c}. First: {x}"]).format(t=phrase, c=cited, p=first_path, x=text)})
    return with_system(rng, msgs, system), specs
