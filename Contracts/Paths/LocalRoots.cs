namespace HybridServing.Contracts.Paths;

/// <summary>
/// Local adapter paths confined to configured roots, one policy for the ControlPlane (which refuses such a
/// source before placing it) and every EngineSidecar (which refuses to hand such a path to its engine): an
/// engine reads whatever path it is given, so an unchecked path would let any caller make it read arbitrary
/// files. Both the lexical path and the path with every symlink resolved must stay inside a root, so neither
/// <c>..</c> segments nor symlinks lead out. No roots: every local path is refused.
/// </summary>
public sealed class LocalRoots
{
    private readonly IReadOnlyList<string> _roots;
    private readonly string _option;

    /// <param name="roots">Absolute directories.</param>
    /// <param name="option">The configuration key that lists the roots, named in every refusal
    /// (e.g. <c>Sidecar:AllowedLocalRoots</c>).</param>
    public LocalRoots(IEnumerable<string> roots, string option)
    {
        _roots = roots.Where(r => !string.IsNullOrWhiteSpace(r))
            .Select(r => Path.TrimEndingDirectorySeparator(Path.GetFullPath(r)))
            .ToArray();
        _option = option;
    }

    public IReadOnlyList<string> Roots => _roots;

    /// <summary>How an operator allows a folder, for refusals and docs.</summary>
    public string HowToAllow(string folder) =>
        $"Allow it with {_option}:N={folder} (environment {_option.Replace(":", "__", StringComparison.Ordinal)}__N).";

    /// <summary>The canonical, symlink-free path when <paramref name="path"/> is allowed; else null and <paramref name="problem"/> says why and how to allow it.</summary>
    public string? Confine(string path, out string? problem)
    {
        problem = Check(path, out var real);
        return problem is null ? real : null;
    }

    private string? Check(string path, out string real)
    {
        real = "";
        if (!Path.IsPathFullyQualified(path))
            return $"Local adapter path '{path}' is refused: it must be absolute.";
        if (path.Split('/', '\\').Any(s => s == ".."))
            return $"Local adapter path '{path}' is refused: '..' segments are not allowed.";
        var full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(path));
        var folder = Path.GetDirectoryName(full) ?? full;
        if (_roots.Count == 0)
            return $"Local adapter path '{path}' is refused: adapter paths are confined and no {_option} are configured. {HowToAllow(folder)}";
        if (!_roots.Any(r => IsInside(full, r)))
            return $"Local adapter path '{path}' is refused: adapter paths are confined to {string.Join(", ", _roots)} ({_option}). {HowToAllow(folder)}";
        real = ResolveAllLinks(full);
        var resolved = real;
        if (!_roots.Select(ResolveAllLinks).Any(r => IsInside(resolved, r)))
            return $"Local adapter path '{path}' is refused: it resolves through a symlink to '{real}', outside the allowed roots ({string.Join(", ", _roots)}, {_option}).";
        return null;
    }

    private static bool IsInside(string path, string root) =>
        path.Equals(root, StringComparison.Ordinal)
        || path.StartsWith(root.EndsWith(Path.DirectorySeparatorChar) ? root : root + Path.DirectorySeparatorChar, StringComparison.Ordinal);

    /// <summary>Resolves symlinks in every component, not only the last one.</summary>
    public static string ResolveAllLinks(string fullPath) => Resolve(fullPath, 0);

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
                if (hops >= 40) throw new IOException($"Too many symlinks resolving '{fullPath}'.");
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
