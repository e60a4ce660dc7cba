using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using HybridServing.Contracts.Peft;
using HybridServing.Contracts.Resources;
using Microsoft.Extensions.Options;

namespace HybridServing.ControlPlane.Sources;

/// <summary>
/// <c>type: huggingface</c>: <c>repository</c> is a Hub repo id <c>org/name</c>, <c>revision</c> defaults to <c>main</c>.
/// The repo is one adapter at its root, or holds adapters in its top-level folders. One tree listing
/// (<c>GET {endpoint}/api/models/{repo}/tree/{revision}?recursive=true</c>, following the Hub's <c>Link: rel="next"</c>
/// pages on the same host) names every file with its size and, for LFS files, its sha256: that is the digest.
/// Each adapter then costs a GET of its config and two ranged GETs of the safetensors header through
/// <c>{endpoint}/{repo}/resolve/{revision}/{path}</c>, and nothing on the next listing while the tree is unchanged.
/// The token (secret key <c>HF_TOKEN</c>, else the environment's) goes only to an https or loopback endpoint.
/// </summary>
internal sealed partial class HubAdapterDiscovery(IOptions<SourceOptions> options, ISecretReader secrets, SourceEnvironment environment, SourceHttp http) : IAdapterDiscovery
{
    public const string DefaultRevision = "main";
    private const int MaxTreePages = 1000;
    private const long MaxTreePageBytes = 32L * 1024 * 1024;
    private readonly SourceOptions _options = options.Value;
    private readonly ConcurrentDictionary<string, (string Fingerprint, DiscoveredAdapter? Adapter, AdapterFailure? Failure)> _known = new(StringComparer.Ordinal);

    // As the sidecar parses hf:// sources (EngineSidecar/Artifacts/AdapterSource.cs).
    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.\-]{0,95}$")]
    private static partial Regex RepoId();

    internal sealed record TreeFile(string Path, long Size, string? Sha256);

    /// <summary><c>ControlPlane:HubEndpoint</c>, else <c>HF_ENDPOINT</c>, else https://huggingface.co.</summary>
    public Uri Endpoint => new(((_options.HubEndpoint is { Length: > 0 } configured ? configured : null)
                                ?? (environment.Get("HF_ENDPOINT") is { Length: > 0 } fromEnvironment ? fromEnvironment : null)
                                ?? "https://huggingface.co").TrimEnd('/') + "/");

    public async Task<DiscoveryResult> DiscoverAsync(DiscoveryRequest request, CancellationToken cancellationToken)
    {
        var repo = request.Source.Repository.Trim();
        if (!RepoId().IsMatch(repo) || repo.Contains(".."))
            return DiscoveryResult.Unavailable(LoraAdapterReasons.InvalidSpec,
                $"spec.adapterSource.repository: Invalid value \"{repo}\": a huggingface repository is a Hub repo id 'org/name'.");
        var revision = request.Source.Revision ?? DefaultRevision;
        if (revision.Split('/').Any(s => s is "" or "." or "..") || revision.Any(c => char.IsControl(c) || char.IsWhiteSpace(c) || c == '@'))
            return DiscoveryResult.Unavailable(LoraAdapterReasons.InvalidSpec,
                $"spec.adapterSource.revision: Invalid value \"{revision}\": not a usable branch, tag or commit (no '@', spaces, empty, '.' or '..' segments).");
        Uri endpoint;
        try
        {
            endpoint = Endpoint;
        }
        catch (UriFormatException)
        {
            return DiscoveryResult.Unavailable(LoraAdapterReasons.SourceUnavailable, "the Hub endpoint (ControlPlane:HubEndpoint or HF_ENDPOINT) is not a URL.");
        }
        var where = $"hf://{repo}@{revision}";
        try
        {
            var token = await TokenAsync(request, cancellationToken);
            var tree = await ListTreeAsync(endpoint, repo, revision, token, cancellationToken);
            var found = new Dictionary<string, string>(StringComparer.Ordinal);
            if (tree.ContainsKey(PeftAdapter.ConfigFileName))
                found[repo[(repo.IndexOf('/') + 1)..]] = "";
            else
                foreach (var path in tree.Keys)
                    if (path.EndsWith("/" + PeftAdapter.ConfigFileName, StringComparison.Ordinal) && path[..^(PeftAdapter.ConfigFileName.Length + 1)] is { Length: > 0 } folder && !folder.Contains('/'))
                        found[folder] = folder;

            var failures = new List<AdapterFailure>();
            var selected = new NameFilter(request.Source).Select(found, where, failures);
            return await RemoteAdapterInspector.InspectAllAsync(selected, _options.SourceConcurrency,
                (c, ct) => InspectAsync(endpoint, repo, revision, c.Name, c.Location, tree, token, ct), failures, cancellationToken);
        }
        catch (SourceException e)
        {
            return DiscoveryResult.Unavailable(e.Reason, e.Message);
        }
    }

    private async Task<string?> TokenAsync(DiscoveryRequest request, CancellationToken cancellationToken)
    {
        if (request.CredentialsSecret is { } name)
        {
            var secret = await secrets.ReadAsync(name, request.Namespace, cancellationToken);
            return secret.GetValueOrDefault("HF_TOKEN") is { Length: > 0 } token
                ? token
                : throw new SourceException(LoraAdapterReasons.CredentialsMissing, $"secret '{name}' named by spec.credentialsSecretRef has no HF_TOKEN.");
        }
        return environment.Get("HF_TOKEN") is { Length: > 0 } fromEnvironment ? fromEnvironment : null;
    }

    private async Task<(DiscoveredAdapter?, AdapterFailure?)> InspectAsync(Uri endpoint, string repo, string revision, string name, string folder,
        IReadOnlyDictionary<string, TreeFile> tree, string? token, CancellationToken cancellationToken)
    {
        var configPath = folder.Length > 0 ? folder + "/" + PeftAdapter.ConfigFileName : PeftAdapter.ConfigFileName;
        var weightsPath = folder.Length > 0 ? folder + "/" + PeftAdapter.SafetensorsFileName : PeftAdapter.SafetensorsFileName;
        var uri = folder.Length > 0 ? $"hf://{repo}/{folder}@{revision}" : $"hf://{repo}@{revision}";
        var config = tree.GetValueOrDefault(configPath);
        var weights = tree.GetValueOrDefault(weightsPath);
        var fingerprint = $"{endpoint}|{config?.Size}|{weights?.Size}/{weights?.Sha256}";
        if (_known.TryGetValue(uri, out var known) && known.Fingerprint == fingerprint && weights?.Sha256 is not null)
            return (known.Adapter is null ? null : known.Adapter with { Name = name }, known.Failure);

        var files = new HubFiles(http, FileUrl(endpoint, repo, revision, configPath), FileUrl(endpoint, repo, revision, weightsPath), token, weights);
        var (adapter, failure) = await RemoteAdapterInspector.InspectAsync(name, uri, uri, weights?.Sha256 ?? "", files, cancellationToken);
        _known[uri] = (fingerprint, adapter, failure);
        if (_known.Count > 100_000) _known.Clear();
        return (adapter, failure);
    }

    internal static Uri FileUrl(Uri endpoint, string repo, string revision, string path) =>
        new($"{endpoint.AbsoluteUri.TrimEnd('/')}/{repo}/resolve/{Uri.EscapeDataString(revision)}/{string.Join('/', path.Split('/').Select(Uri.EscapeDataString))}");

    /// <summary>Every file of the revision (path → size, LFS sha256), following the Hub's pages.</summary>
    private async Task<Dictionary<string, TreeFile>> ListTreeAsync(Uri endpoint, string repo, string revision, string? token, CancellationToken cancellationToken)
    {
        var files = new Dictionary<string, TreeFile>(StringComparer.Ordinal);
        Uri? next = new($"{endpoint.AbsoluteUri.TrimEnd('/')}/api/models/{repo}/tree/{Uri.EscapeDataString(revision)}?recursive=true");
        for (var page = 0; next is not null; page++)
        {
            if (page >= MaxTreePages)
                throw new SourceException(LoraAdapterReasons.SourceUnavailable, $"the tree listing of {repo}@{revision} did not end after {MaxTreePages} pages.");
            var url = next;
            (var entries, next) = await http.GetAsync(url, token, null, async (response, ct) =>
            {
                if (response.StatusCode == HttpStatusCode.NotFound)
                    throw new SourceException(LoraAdapterReasons.SourceUnavailable,
                        $"the Hub at {endpoint.Host} has no repository {repo} with revision '{revision}'" + (token is null ? " (a private repository also needs a token: spec.credentialsSecretRef with HF_TOKEN)." : "."));
                if (!response.IsSuccessStatusCode)
                    throw new SourceException(LoraAdapterReasons.SourceUnavailable, $"listing {repo}@{revision}: GET {SourceHttp.Display(url)} answered {(int)response.StatusCode} {response.ReasonPhrase}.");
                var body = await SourceHttp.ReadAtMostAsync(response, MaxTreePageBytes + 1, ct);
                if (body.Length > MaxTreePageBytes)
                    throw new SourceException(LoraAdapterReasons.SourceUnavailable, $"listing {repo}@{revision}: a page is larger than {MaxTreePageBytes} bytes.");
                return (ParseTree(body, repo), NextPage(response, url));
            }, cancellationToken);
            foreach (var f in entries) files[f.Path] = f;
        }
        return files;
    }

    /// <summary>The Hub's tree JSON: [{"type":"file","path","size","lfs":{"oid":sha256,...}}, {"type":"directory",...}].</summary>
    internal static List<TreeFile> ParseTree(byte[] json, string repo)
    {
        var files = new List<TreeFile>();
        try
        {
            using var doc = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 16 });
            if (doc.RootElement.ValueKind != JsonValueKind.Array)
                throw new SourceException(LoraAdapterReasons.SourceUnavailable, $"the tree listing of {repo} is not a JSON array.");
            foreach (var e in doc.RootElement.EnumerateArray())
            {
                if (e.ValueKind != JsonValueKind.Object || !e.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String || type.GetString() != "file") continue;
                if (!e.TryGetProperty("path", out var pathEl) || pathEl.ValueKind != JsonValueKind.String) continue;
                var path = pathEl.GetString()!;
                // A hostile listing must not smuggle paths the resolve URL would normalise away.
                if (path.Length == 0 || path.StartsWith('/') || path.Contains('\\') || path.Split('/').Any(s => s is "" or "." or "..") || path.Any(char.IsControl)) continue;
                var size = e.TryGetProperty("size", out var sizeEl) && sizeEl.TryGetInt64(out var s) && s >= 0 ? s : -1;
                string? sha256 = null;
                if (e.TryGetProperty("lfs", out var lfs) && lfs.ValueKind == JsonValueKind.Object
                    && lfs.TryGetProperty("oid", out var oid) && oid.ValueKind == JsonValueKind.String
                    && oid.GetString() is { Length: 64 } hex && hex.All(Uri.IsHexDigit))
                {
                    sha256 = hex.ToLowerInvariant();
                    if (lfs.TryGetProperty("size", out var lfsSize) && lfsSize.TryGetInt64(out var ls) && ls >= 0) size = ls;
                }
                files.Add(new TreeFile(path, size, sha256));
            }
        }
        catch (JsonException e)
        {
            throw new SourceException(LoraAdapterReasons.SourceUnavailable, $"the tree listing of {repo} is not valid JSON: {e.Message}");
        }
        return files;
    }

    /// <summary><c>Link: &lt;url&gt;; rel="next"</c>, followed only on the endpoint's own scheme, host and port (the token goes with it).</summary>
    private static Uri? NextPage(HttpResponseMessage response, Uri current)
    {
        if (!response.Headers.TryGetValues("Link", out var values)) return null;
        foreach (var part in values.SelectMany(v => v.Split(',')))
        {
            var segments = part.Split(';', StringSplitOptions.TrimEntries);
            if (segments.Length < 2 || !segments[0].StartsWith('<') || !segments[0].EndsWith('>')) continue;
            if (!segments.Skip(1).Any(s => s.Replace(" ", "") is "rel=\"next\"" or "rel=next")) continue;
            if (!Uri.TryCreate(current, segments[0][1..^1], out var next)) return null;
            if (next.Scheme != current.Scheme || next.Host != current.Host || next.Port != current.Port)
                throw new SourceException(LoraAdapterReasons.SourceUnavailable, $"the tree listing's next page points to another host ({next.Host}); refusing to follow it.");
            return next == current ? throw new SourceException(LoraAdapterReasons.SourceUnavailable, "the tree listing's next page is the page itself.") : next;
        }
        return null;
    }

    private sealed class HubFiles(SourceHttp http, Uri configUrl, Uri weightsUrl, string? token, TreeFile? weights) : IAdapterFiles
    {
        public Task<byte[]?> ReadConfigAsync(CancellationToken cancellationToken) =>
            http.GetSmallFileAsync(configUrl, token, PeftAdapter.MaxConfigBytes, cancellationToken);

        public Task<RangeRead?> ReadWeightsAsync(long offset, int length, CancellationToken cancellationToken) =>
            weights is null
                ? Task.FromResult<RangeRead?>(null)
                : http.GetRangeAsync(weightsUrl, token, offset, length, weights.Size >= 0 ? weights.Size : null, cancellationToken);
    }
}
