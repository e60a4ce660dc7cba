using System.Collections.Concurrent;
using System.Text.RegularExpressions;
using HybridServing.Contracts.Paths;
using HybridServing.Contracts.Peft;
using HybridServing.Contracts.Resources;

namespace HybridServing.ControlPlane.Sources;

/// <summary>
/// Discovery for <c>type: local</c>: <c>repository</c> is a directory of adapter directories, or one
/// adapter directory itself. Explicit names, the glob pattern and the prefix filter the candidates.
/// Every directory used is confined to the repository (no <c>..</c>, no symlink escapes). Digests
/// are cached by (path, size, mtime) so a periodic re-list does not re-hash unchanged weights.
/// A repository outside the allowed local roots is refused here (reason PathNotAllowed, naming the option
/// that allows it) rather than placed for every sidecar to refuse.
/// </summary>
internal sealed class LocalAdapterDiscovery(LocalRoots? roots = null) : IAdapterDiscovery
{
    public const string PathNotAllowed = "PathNotAllowed";
    public const string RootsOption = "ControlPlane:AllowedLocalRoots";

    /// <summary>The configured roots; when none are configured, the manifests folder in the Local home, and no
    /// ControlPlane-side check in the Kubernetes home (its pod does not mount the sidecars' adapter folders; the
    /// sidecars still confine).</summary>
    public static LocalRoots? Roots(SourceOptions sources, ControlPlaneOptions options) =>
        sources.AllowedLocalRoots.Count > 0 ? new LocalRoots(sources.AllowedLocalRoots, RootsOption)
        : string.Equals(options.Home, "Local", StringComparison.OrdinalIgnoreCase) && !string.IsNullOrWhiteSpace(options.ManifestsPath)
            ? new LocalRoots([options.ManifestsPath], RootsOption)
            : null;

    private readonly ConcurrentDictionary<string, (long Length, DateTime Modified, string Digest)> _digests = new(StringComparer.Ordinal);

    public Task<DiscoveryResult> DiscoverAsync(DiscoveryRequest request, CancellationToken cancellationToken) =>
        DiscoverAsync(request.Source, request.BaseDirectory, cancellationToken);

    public async Task<DiscoveryResult> DiscoverAsync(AdapterSource source, string? baseDirectory, CancellationToken cancellationToken)
    {
        if (source.Type != AdapterSourceTypes.Local)
            return DiscoveryResult.Unavailable(LoraAdapterReasons.SourceUnavailable,
                $"spec.adapterSource.type '{source.Type}' is not a local source.");

        string repository;
        try
        {
            repository = Path.TrimEndingDirectorySeparator(Path.GetFullPath(Path.IsPathRooted(source.Repository)
                ? source.Repository
                : Path.Combine(baseDirectory ?? Directory.GetCurrentDirectory(), source.Repository)));
        }
        catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException)
        {
            return DiscoveryResult.Unavailable(LoraAdapterReasons.SourceUnavailable, $"spec.adapterSource.repository '{source.Repository}' is not a usable path: {e.Message}");
        }
        if (roots is not null)
        {
            string? problem;
            try { roots.Confine(repository, out problem); }
            catch (IOException e) { problem = e.Message; }
            if (problem is not null)
                return DiscoveryResult.Unavailable(PathNotAllowed, $"spec.adapterSource.repository: {problem} Every sidecar needs the same folder in Sidecar:AllowedLocalRoots.");
        }
        if (!Directory.Exists(repository))
            return DiscoveryResult.Unavailable(LoraAdapterReasons.SourceUnavailable, $"spec.adapterSource.repository: directory {repository} does not exist.");

        var adapters = new List<DiscoveredAdapter>();
        var failures = new List<AdapterFailure>();
        List<(string Name, string Directory)> candidates;
        try
        {
            candidates = ListCandidates(source, repository, failures);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return DiscoveryResult.Unavailable(LoraAdapterReasons.SourceUnavailable, $"spec.adapterSource.repository: cannot list {repository}: {e.Message}");
        }

        foreach (var (name, dir) in candidates)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (!Regex.IsMatch(name, AdapterNames.Pattern))
            {
                failures.Add(new(name, LoraAdapterReasons.InvalidAdapter, $"directory name '{name}' cannot be used as an adapter (model) name; it must match {AdapterNames.Pattern}."));
                continue;
            }
            if (EscapesRepository(dir, repository) is { } escape)
            {
                failures.Add(new(name, LoraAdapterReasons.InvalidAdapter, escape));
                continue;
            }
            try
            {
                var info = PeftAdapter.Read(dir);
                if (info.Config.Validate(int.MaxValue) is { } rejection)
                {
                    failures.Add(new(name, LoraAdapterReasons.AdapterIncompatible, rejection));
                    continue;
                }
                var digest = await DigestAsync(info.WeightsFile, cancellationToken);
                adapters.Add(new DiscoveredAdapter(name, dir, info.Rank, info.TargetModules, info.SizeBytes, digest, info.Config.BaseModelNameOrPath));
            }
            catch (PeftNotFoundException)
            {
                failures.Add(new(name, LoraAdapterReasons.AdapterNotFound, $"no adapter in {dir} (adapter_config.json plus adapter_model.safetensors or .bin expected)."));
            }
            catch (PeftFormatException e)
            {
                failures.Add(new(name, LoraAdapterReasons.InvalidAdapter, e.Message));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                failures.Add(new(name, LoraAdapterReasons.SourceUnavailable, $"cannot read {dir}: {e.Message}"));
            }
        }
        return new DiscoveryResult(adapters, failures);
    }

    private static List<(string, string)> ListCandidates(AdapterSource source, string repository, List<AdapterFailure> failures)
    {
        var pattern = source.Pattern is { } p ? Glob.ToRegex(p) : null;
        bool Wanted(string name) => (pattern is null || pattern.IsMatch(name))
                                    && (source.Prefix is null || name.StartsWith(source.Prefix, StringComparison.Ordinal));

        // The repository may itself be one adapter.
        if (IsAdapterDirectory(repository))
        {
            var name = Path.GetFileName(repository);
            if (source.Adapters is { Count: > 0 } explicitNames)
            {
                foreach (var missing in explicitNames.Where(n => n != name))
                    failures.Add(new(missing, LoraAdapterReasons.AdapterNotFound, $"the repository {repository} is a single adapter named '{name}', not '{missing}'."));
                return explicitNames.Contains(name) && Wanted(name) ? [(name, repository)] : [];
            }
            return Wanted(name) ? [(name, repository)] : [];
        }

        if (source.Adapters is { Count: > 0 } names)
        {
            var result = new List<(string, string)>();
            foreach (var name in names.Where(Wanted))
            {
                var dir = Path.GetFullPath(Path.Combine(repository, name));
                if (!dir.StartsWith(repository + Path.DirectorySeparatorChar, StringComparison.Ordinal))
                {
                    failures.Add(new(name, LoraAdapterReasons.InvalidAdapter, $"'{name}' points outside the repository {repository}."));
                    continue;
                }
                if (!Directory.Exists(dir))
                {
                    failures.Add(new(name, LoraAdapterReasons.AdapterNotFound, $"no adapter directory {dir}."));
                    continue;
                }
                result.Add((name, dir));
            }
            return result;
        }

        return [.. Directory.EnumerateDirectories(repository)
            .Select(d => (Name: Path.GetFileName(d), Dir: d))
            .Where(d => Wanted(d.Name) && IsAdapterDirectory(d.Dir))
            .OrderBy(d => d.Name, StringComparer.Ordinal)];
    }

    private static bool IsAdapterDirectory(string dir) => File.Exists(Path.Combine(dir, PeftAdapter.ConfigFileName));

    /// <summary>A symlinked adapter directory must still resolve inside the repository.</summary>
    private static string? EscapesRepository(string dir, string repository)
    {
        var info = new DirectoryInfo(dir);
        if (info.LinkTarget is null) return null;
        var target = info.ResolveLinkTarget(returnFinalTarget: true)?.FullName;
        var realRepo = new DirectoryInfo(repository).LinkTarget is null ? repository : new DirectoryInfo(repository).ResolveLinkTarget(true)?.FullName ?? repository;
        return target is not null && target.StartsWith(realRepo + Path.DirectorySeparatorChar, StringComparison.Ordinal)
            ? null
            : $"{dir} is a link to {target}, outside the repository {repository}.";
    }

    private async Task<string> DigestAsync(string weightsFile, CancellationToken cancellationToken)
    {
        var fi = new FileInfo(weightsFile);
        if (_digests.TryGetValue(weightsFile, out var cached) && cached.Length == fi.Length && cached.Modified == fi.LastWriteTimeUtc)
            return cached.Digest;
        var digest = await PeftAdapter.ComputeDigestAsync(weightsFile, cancellationToken);
        _digests[weightsFile] = (fi.Length, fi.LastWriteTimeUtc, digest);
        return digest;
    }
}
