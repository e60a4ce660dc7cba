namespace HybridServing.EngineSidecar.Artifacts;

/// <summary>
/// Local adapter paths are confined to configured roots: the engine reads whatever path it is given,
/// so an unchecked path would let any caller of the sidecar make the engine read arbitrary files.
/// Both the lexical path and the path with every symlink resolved must stay inside a root, so neither
/// <c>..</c> segments nor symlinks lead out.
/// </summary>
internal sealed class LocalPathPolicy
{
    private readonly IReadOnlyList<string> _roots;

    public LocalPathPolicy(IEnumerable<string> roots)
    {
        _roots = roots.Where(r => !string.IsNullOrWhiteSpace(r))
            .Select(r => Path.TrimEndingDirectorySeparator(Path.GetFullPath(r)))
            .ToArray();
    }

    public IReadOnlyList<string> Roots => _roots;

    /// <summary>Returns the canonical, symlink-free path, or throws <see cref="ArtifactException"/> with PathNotAllowed.</summary>
    public string Confine(string path)
    {
        if (_roots.Count == 0)
            throw new ArtifactException(FailureReasons.PathNotAllowed,
                $"Local adapter path '{path}' is refused: adapter paths are confined and no Sidecar:AllowedLocalRoots are configured.");
        if (!Path.IsPathFullyQualified(path))
            throw new ArtifactException(FailureReasons.PathNotAllowed, $"Local adapter path '{path}' is refused: it must be absolute.");
        if (path.Split('/', '\\').Any(s => s == ".."))
            throw new ArtifactException(FailureReasons.PathNotAllowed, $"Local adapter path '{path}' is refused: '..' segments are not allowed.");

        var full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(path));
        if (!_roots.Any(r => IsInside(full, r)))
            throw NotInside(path);

        var real = ResolveAllLinks(full);
        var realRoots = _roots.Select(ResolveAllLinks);
        if (!realRoots.Any(r => IsInside(real, r)))
            throw new ArtifactException(FailureReasons.PathNotAllowed,
                $"Local adapter path '{path}' is refused: it resolves through a symlink to '{real}', outside the allowed roots ({string.Join(", ", _roots)}).");
        return real;
    }

    private ArtifactException NotInside(string path) =>
        new(FailureReasons.PathNotAllowed,
            $"Local adapter path '{path}' is refused: adapter paths are confined to {string.Join(", ", _roots)} (Sidecar:AllowedLocalRoots).");

    private static bool IsInside(string path, string root) =>
        path.Equals(root, StringComparison.Ordinal)
        || path.StartsWith(root.EndsWith(Path.DirectorySeparatorChar) ? root : root + Path.DirectorySeparatorChar, StringComparison.Ordinal);

    /// <summary>Resolves symlinks in every component, not only the last one.</summary>
    internal static string ResolveAllLinks(string fullPath) => Resolve(fullPath, 0);

    private static string Resolve(string fullPath, int hops)
    {
        var root = Path.GetPathRoot(fullPath)!;
        var current = root;
        var parts = fullPath[root.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries);
        for (var i = 0; i < parts.Length; i++)
        {
            var next = Path.Combine(current, parts[i]);
            FileSystemInfo info = Directory.Exists(next) ? new DirectoryInfo(next) : new FileInfo(next);
            if (info.Exists && info.LinkTarget is { } target)
            {
                if (hops >= 40) throw new ArtifactException(FailureReasons.PathNotAllowed, $"Too many symlinks resolving '{fullPath}'.");
                var resolved = Path.GetFullPath(Path.IsPathRooted(target) ? target : Path.Combine(current, target));
                // Re-walk from the link target with the rest appended: the target may hold links too.
                var remainder = string.Join(Path.DirectorySeparatorChar, parts[(i + 1)..]);
                return Resolve(remainder.Length == 0 ? resolved : Path.Combine(resolved, remainder), hops + 1);
            }
            current = next;
        }
        return Path.TrimEndingDirectorySeparator(current);
    }
}
