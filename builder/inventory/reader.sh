# What is installed in an image, read without starting a server or a kernel.
# POSIX sh; every tool is optional (a missing one prints nothing). One fact per line, tab-separated,
# the first field its kind:
#   os       ID VERSION_ID PRETTY_NAME
#   deb      name version architecture
#   env      prefix python-version                      (a Python environment)
#   pypi     prefix name version
#   conda    prefix name version channel
#   kernel   name language display-name kernel.json-path
#   labext   name version
#   npm      name version
#   cran     name version library
#   maven    groupId:artifactId version jar             (a JAR's META-INF/maven/*/*/pom.properties; without one,
#                                                        the Implementation-Title/Version of its MANIFEST.MF)
#   golang   module version binary                      (a Go binary's build info, where the image has `go`)
#   version  name first-line-of-the-command's-output     (the fragments' version commands: "$@" = name command ...)
set -u
T=$(printf '\t')

if [ -r /etc/os-release ]; then
  (. /etc/os-release; printf 'os\t%s\t%s\t%s\n' "${ID:-}" "${VERSION_ID:-}" "${PRETTY_NAME:-}")
fi

if command -v dpkg-query >/dev/null 2>&1; then
  dpkg-query -W -f='${db:Status-Abbrev}\t${Package}\t${Version}\t${Architecture}\n' 2>/dev/null \
    | sed -n "s/^ii *$T/deb$T/p"
fi

# Every Python environment: the one on PATH, the system's, venvs and conda environments under /opt, conda's envs.
seen=" "
for py in $(command -v python3 python 2>/dev/null) /usr/bin/python3 /usr/local/bin/python3 \
          /opt/*/bin/python3 /opt/*/envs/*/bin/python3 ${CONDA_DIR:+$CONDA_DIR/bin/python3} \
          ${CONDA_DIR:+$CONDA_DIR/envs/*/bin/python3}; do
  [ -x "$py" ] || continue
  case "$seen" in *" $py "*) continue ;; esac
  seen="$seen$py "
  "$py" - 2>/dev/null <<'PY'
import glob, json, os, sys
T = "\t"
prefix = sys.prefix
print("env", prefix, "%d.%d.%d" % sys.version_info[:3], sep=T)
try:
    from importlib import metadata
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            print("pypi", prefix, name, dist.version, sep=T)
except Exception:
    pass
for meta in glob.glob(os.path.join(prefix, "conda-meta", "*.json")):
    try:
        with open(meta) as f:
            d = json.load(f)
        print("conda", prefix, d["name"], d["version"], d.get("channel", ""), sep=T)
    except Exception:
        pass
roots = [os.path.join(prefix, "share", "jupyter"), "/usr/local/share/jupyter", "/usr/share/jupyter",
         os.path.expanduser("~/.local/share/jupyter")]
roots += [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p]
for root in roots:
    for spec in sorted(glob.glob(os.path.join(root, "kernels", "*", "kernel.json"))):
        try:
            with open(spec) as f:
                d = json.load(f)
            print("kernel", os.path.basename(os.path.dirname(spec)), d.get("language", ""),
                  d.get("display_name", ""), spec, sep=T)
        except Exception:
            pass
    for pkg in sorted(glob.glob(os.path.join(root, "labextensions", "*", "package.json"))
                      + glob.glob(os.path.join(root, "labextensions", "@*", "*", "package.json"))):
        try:
            with open(pkg) as f:
                d = json.load(f)
            print("labext", d["name"], d.get("version", ""), sep=T)
        except Exception:
            pass
PY
done

if command -v node >/dev/null 2>&1; then
  node -e '
    const fs = require("fs"), path = require("path");
    const roots = new Set(["/usr/local/lib/node_modules", "/usr/lib/node_modules"]);
    if (process.env.NPM_CONFIG_PREFIX) roots.add(path.join(process.env.NPM_CONFIG_PREFIX, "lib", "node_modules"));
    const show = (dir) => { try { const p = JSON.parse(fs.readFileSync(path.join(dir, "package.json")));
      console.log(["npm", p.name, p.version || ""].join("\t")); } catch (e) {} };
    for (const root of roots) { let names = []; try { names = fs.readdirSync(root); } catch (e) { continue; }
      for (const name of names.sort()) { if (name.startsWith("@")) { for (const inner of fs.readdirSync(path.join(root, name)).sort()) show(path.join(root, name, inner)); }
        else if (!name.startsWith(".")) show(path.join(root, name)); } }
  ' 2>/dev/null
fi

if command -v Rscript >/dev/null 2>&1; then
  Rscript --vanilla -e 'p <- installed.packages()[, c("Package", "Version", "LibPath"), drop = FALSE];
    if (nrow(p)) writeLines(paste("cran", p[, 1], p[, 2], p[, 3], sep = "\t"))' 2>/dev/null
fi

# JARs outside Debian's packages (those are `deb` facts): kernels' jars under /opt and /usr/local, one
# fact per bundled artifact. Only the zip directory and two small entries of each jar are read.
for py in $(command -v python3 2>/dev/null) /usr/bin/python3; do
  [ -x "$py" ] || continue
  "$py" - /opt /usr/local /srv 2>/dev/null <<'PY'
import os, sys, zipfile
T = "\t"
def props(text):
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))
for root in sys.argv[1:]:
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            if not name.endswith(".jar"):
                continue
            jar = os.path.join(folder, name)
            try:
                with zipfile.ZipFile(jar) as z:
                    poms = [n for n in z.namelist() if n.startswith("META-INF/maven/") and n.endswith("/pom.properties")]
                    for pom in poms:
                        p = props(z.read(pom).decode("utf-8", "replace"))
                        if p.get("groupId") and p.get("artifactId") and p.get("version"):
                            print("maven", p["groupId"].strip() + ":" + p["artifactId"].strip(), p["version"].strip(), jar, sep=T)
                    if not poms and "META-INF/MANIFEST.MF" in z.namelist():
                        m = props(z.read("META-INF/MANIFEST.MF").decode("utf-8", "replace").replace(": ", "="))
                        title = m.get("Implementation-Title") or m.get("Bundle-SymbolicName", "").split(";")[0]
                        version = m.get("Implementation-Version") or m.get("Bundle-Version")
                        if title and version:
                            print("maven", title.strip(), version.strip(), jar, sep=T)
            except Exception:
                pass
PY
  break
done

if command -v go >/dev/null 2>&1; then
  go version -m /usr/local/bin /opt 2>/dev/null | awk -F'\t' '
    /^[^\t]/ { binary = $1; sub(/: .*$/, "", binary) }
    ($2 == "mod" || $2 == "dep") && $4 != "" { print "golang\t" $3 "\t" $4 "\t" binary }'
fi

while [ $# -ge 2 ]; do
  answer=$(sh -c "$2" 2>/dev/null | sed -n '/[^[:space:]]/{p;q;}')
  printf 'version\t%s\t%s\n' "$1" "$answer"
  shift 2
done
exit 0
