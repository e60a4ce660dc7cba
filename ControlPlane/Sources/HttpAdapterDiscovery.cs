using HybridServing.Contracts.Peft;
using HybridServing.Contracts.Resources;
using Microsoft.Extensions.Options;

namespace HybridServing.ControlPlane.Sources;

/// <summary>
/// <c>type: http</c>: <c>repository</c> is a base URL. With <c>adapters</c>, each name is a sub-path holding
/// <c>adapter_config.json</c> and <c>adapter_model.safetensors</c> (<c>{base}/{name}/…</c>); without, the URL is one
/// adapter named by its last path segment. A static file server has no listing, so nothing else is discovered.
/// Each adapter costs a GET of its config and two ranged GETs of the safetensors header. The digest is the
/// representation's sha256 when the server sends <c>Repr-Digest: sha-256=:…:</c> (RFC 9530), else empty. Sidecars fetch
/// http sources without credentials, so none are used here either (a query string, e.g. a signature, is kept and never shown).
/// </summary>
internal sealed class HttpAdapterDiscovery(IOptions<SourceOptions> options, ISecretReader secrets, SourceHttp http) : IAdapterDiscovery
{
    private readonly SourceOptions _options = options.Value;

    public async Task<DiscoveryResult> DiscoverAsync(DiscoveryRequest request, CancellationToken cancellationToken)
    {
        var repository = request.Source.Repository.Trim();
        if (!Uri.TryCreate(repository, UriKind.Absolute, out var baseUrl) || baseUrl.Scheme is not ("http" or "https") || string.IsNullOrEmpty(baseUrl.Host))
            return DiscoveryResult.Unavailable(LoraAdapterReasons.InvalidSpec,
                $"spec.adapterSource.repository: Invalid value \"{Redact(repository)}\": an http repository is an absolute http(s) URL.");
        if (!string.IsNullOrEmpty(baseUrl.UserInfo))
            return DiscoveryResult.Unavailable(LoraAdapterReasons.InvalidSpec,
                $"spec.adapterSource.repository: Invalid value \"{Redact(repository)}\": credentials in the URL are refused (sidecars refuse them too, and they would be logged).");
        try
        {
            // A named secret must exist even though plain HTTP sources use none: a typo should not pass silently.
            if (request.CredentialsSecret is { } secret) await secrets.ReadAsync(secret, request.Namespace, cancellationToken);

            var failures = new List<AdapterFailure>();
            var filter = new NameFilter(request.Source);
            var found = new Dictionary<string, Uri>(StringComparer.Ordinal);
            if (filter.Explicit is { } names)
            {
                foreach (var name in names) found[name] = SourceHttp.Combine(baseUrl, name);
            }
            else
            {
                var last = baseUrl.AbsolutePath.TrimEnd('/');
                var name = Uri.UnescapeDataString(last[(last.LastIndexOf('/') + 1)..]);
                if (name.Length == 0)
                    return DiscoveryResult.Unavailable(LoraAdapterReasons.InvalidSpec,
                        $"spec.adapterSource.repository: \"{SourceHttp.Display(baseUrl)}\" has no path segment to name the adapter by; give spec.adapterSource.adapters.");
                found[name] = baseUrl;
            }
            var selected = filter.Select(found, SourceHttp.Display(baseUrl), failures);
            return await RemoteAdapterInspector.InspectAllAsync(selected, _options.SourceConcurrency, async (c, ct) =>
            {
                var uri = c.Location.AbsoluteUri.TrimEnd('/');
                var files = new HttpFiles(http, SourceHttp.Combine(c.Location, PeftAdapter.ConfigFileName), SourceHttp.Combine(c.Location, PeftAdapter.SafetensorsFileName));
                var (adapter, failure) = await RemoteAdapterInspector.InspectAsync(c.Name, uri, SourceHttp.Display(c.Location), "", files, ct);
                return (adapter is null ? null : adapter with { Digest = files.Digest ?? "" }, failure);
            }, failures, cancellationToken);
        }
        catch (SourceException e)
        {
            return DiscoveryResult.Unavailable(e.Reason, e.Message);
        }
    }

    /// <summary>A repository as messages may show it: no user info, no query (both carry credentials).</summary>
    private static string Redact(string url)
    {
        if (url.IndexOf('?') is var q and >= 0) url = url[..q] + "?…";
        var scheme = url.IndexOf("://", StringComparison.Ordinal);
        var at = scheme < 0 ? -1 : url.IndexOf('@', scheme + 3);
        var slash = scheme < 0 ? -1 : url.IndexOf('/', scheme + 3);
        return at > 0 && (slash < 0 || at < slash) ? url[..(scheme + 3)] + "***@" + url[(at + 1)..] : url;
    }

    /// <summary>RFC 9530 <c>Repr-Digest: sha-256=:base64:</c>: the whole file's digest, also on a 206.</summary>
    internal static string? ReprDigestSha256(IEnumerable<string> values)
    {
        foreach (var member in values.SelectMany(v => v.Split(',', StringSplitOptions.TrimEntries)))
        {
            var eq = member.IndexOf('=');
            if (eq < 0 || !member[..eq].Trim().Equals("sha-256", StringComparison.OrdinalIgnoreCase)) continue;
            var value = member[(eq + 1)..].Trim();
            if (value.Length < 2 || value[0] != ':' || value[^1] != ':') continue;
            var bytes = new byte[32];
            if (Convert.TryFromBase64String(value[1..^1], bytes, out var written) && written == 32) return Convert.ToHexStringLower(bytes);
        }
        return null;
    }

    private sealed class HttpFiles(SourceHttp http, Uri configUrl, Uri weightsUrl) : IAdapterFiles
    {
        public string? Digest { get; private set; }

        public Task<byte[]?> ReadConfigAsync(CancellationToken cancellationToken) =>
            http.GetSmallFileAsync(configUrl, null, PeftAdapter.MaxConfigBytes, cancellationToken);

        public async Task<RangeRead?> ReadWeightsAsync(long offset, int length, CancellationToken cancellationToken)
        {
            var read = await http.GetRangeAsync(weightsUrl, null, offset, length, null, cancellationToken, headers =>
            {
                if (headers.TryGetValues("Repr-Digest", out var values)) Digest ??= ReprDigestSha256(values);
            });
            return read;
        }
    }
}
