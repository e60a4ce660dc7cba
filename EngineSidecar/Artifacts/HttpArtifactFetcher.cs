using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using HybridServing.Contracts.Peft;

namespace HybridServing.EngineSidecar.Artifacts;

/// <summary>Downloads single files over HTTP(S) within a <see cref="DownloadBudget"/>.</summary>
internal sealed class HttpFileDownloader(IHttpClientFactory clients)
{
    public const string ClientName = "artifacts";

    /// <summary>Downloads <paramref name="url"/> to <paramref name="path"/>. Returns the response headers of interest.</summary>
    public async Task<HttpResponseHeaders> DownloadAsync(Uri url, string path, DownloadBudget budget, string? bearerToken, CancellationToken cancellationToken)
    {
        var http = clients.CreateClient(ClientName);
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        if (bearerToken is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearerToken);
        var what = $"GET {Redact(url)}";
        HttpResponseMessage response;
        try
        {
            response = await budget.WithIdleTimeoutAsync(what,
                ct => http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct), cancellationToken);
        }
        catch (HttpRequestException e) when (Contracts.Net.AddressNotAllowedException.Find(e) is { } refused)
        {
            throw new ArtifactException(FailureReasons.AddressNotAllowed, $"{what} refused: {refused.Message}", e);
        }
        catch (HttpRequestException e)
        {
            throw new ArtifactException(FailureReasons.DownloadFailed, $"{what} failed: {e.Message}", e);
        }
        using (response)
        {
            if (!response.IsSuccessStatusCode)
            {
                var reason = response.StatusCode switch
                {
                    HttpStatusCode.NotFound => FailureReasons.NotFound,
                    HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden => FailureReasons.Unauthorized,
                    _ => FailureReasons.DownloadFailed,
                };
                throw new ArtifactException(reason, $"{what} answered {(int)response.StatusCode} {response.ReasonPhrase}.");
            }
            var length = response.Content.Headers.ContentLength;
            budget.Announce(what, length);
            Stream body;
            try
            {
                body = await budget.WithIdleTimeoutAsync(what, ct => response.Content.ReadAsStreamAsync(ct), cancellationToken);
            }
            catch (HttpRequestException e)
            {
                throw new ArtifactException(FailureReasons.DownloadFailed, $"{what} failed: {e.Message}", e);
            }
            await using (body)
            {
                try
                {
                    await budget.CopyToFileAsync(what, body, path, length, cancellationToken);
                }
                catch (HttpRequestException e)
                {
                    throw new ArtifactException(FailureReasons.DownloadFailed, $"{what} broke off: {e.Message}", e);
                }
            }
            return response.Headers;
        }
    }

    /// <summary>URLs are logged and reported without query strings: signed URLs carry credentials there.</summary>
    public static string Redact(Uri url) => string.IsNullOrEmpty(url.Query) ? url.AbsoluteUri : url.GetLeftPart(UriPartial.Path) + "?…";
}

/// <summary><c>http(s)://base</c>: the PEFT files are fetched from <c>base/adapter_config.json</c> and
/// <c>base/adapter_model.safetensors</c>, the layout of a static file server or bucket website; a URL ending in
/// <c>.tar</c>, <c>.tar.gz</c> or <c>.tgz</c> is one archive holding them.</summary>
internal sealed class HttpArtifactFetcher(HttpFileDownloader downloader) : IArtifactFetcher
{
    public AdapterSourceKind Kind => AdapterSourceKind.Http;

    public async Task FetchAsync(AdapterSource source, string directory, DownloadBudget budget, CancellationToken cancellationToken)
    {
        if (AdapterArchive.IsArchive(source.Url!.AbsolutePath))
        {
            var archive = Path.Combine(directory, ".archive");
            await downloader.DownloadAsync(source.Url, archive, budget, bearerToken: null, cancellationToken);
            await AdapterArchive.ExtractAsync(archive, source.Url.AbsolutePath, directory, budget.MaxBytes, cancellationToken);
            File.Delete(archive);
            return;
        }
        foreach (var file in new[] { PeftAdapter.ConfigFileName, PeftAdapter.SafetensorsFileName })
        {
            var url = FileUrl(source.Url!, file);
            await downloader.DownloadAsync(url, Path.Combine(directory, file), budget, bearerToken: null, cancellationToken);
        }
    }

    internal static Uri FileUrl(Uri baseUrl, string file)
    {
        var builder = new UriBuilder(baseUrl);
        builder.Path = builder.Path.TrimEnd('/') + "/" + file;
        return builder.Uri;
    }
}

/// <summary>
/// <c>hf://org/repo[/subfolder][@revision]</c> through the Hub's HTTP API:
/// <c>{endpoint}/{repo}/resolve/{revision}/{path}</c>. The token is sent only over HTTPS (or to a loopback
/// host), and HttpClient drops it on redirects, so the CDN the Hub redirects to never sees it. For LFS files the
/// Hub names the sha256 in <c>X-Linked-Etag</c>; when present the download is checked against it. The token is the
/// HF_TOKEN of the Secret the adapter names (spec.credentialsSecretRef), else the sidecar's own.
/// </summary>
internal sealed class HubArtifactFetcher(HttpFileDownloader downloader, HubSettings settings, SourceCredentials secrets) : IArtifactFetcher
{
    public AdapterSourceKind Kind => AdapterSourceKind.Hub;

    public async Task FetchAsync(AdapterSource source, string directory, DownloadBudget budget, CancellationToken cancellationToken)
    {
        var revision = source.Revision ?? settings.DefaultRevision;
        var token = source.Credentials is { } reference
            ? SourceCredentials.Require(await secrets.ReadAsync(reference, cancellationToken), reference, "HF_TOKEN")[0]
            : settings.Token;
        if (token is not null && settings.Endpoint.Scheme != Uri.UriSchemeHttps && !settings.Endpoint.IsLoopback)
            throw new ArtifactException(FailureReasons.Unauthorized,
                $"Refusing to send the Hub token over plain HTTP to {settings.Endpoint.Host}; use an https HF_ENDPOINT.");
        foreach (var file in new[] { PeftAdapter.ConfigFileName, PeftAdapter.SafetensorsFileName })
        {
            var url = FileUrl(settings.Endpoint, source.Repo!, revision, source.Subfolder, file);
            var path = Path.Combine(directory, file);
            var headers = await downloader.DownloadAsync(url, path, budget, token, cancellationToken);
            if (TryLinkedSha256(headers, out var expected))
            {
                await using var stream = File.OpenRead(path);
                var actual = Convert.ToHexStringLower(await SHA256.HashDataAsync(stream, cancellationToken));
                if (actual != expected)
                    throw new ArtifactException(FailureReasons.DigestMismatch,
                        $"{source.Display}: {file} has sha256 {actual} but the Hub announced {expected}.");
            }
        }
    }

    internal static Uri FileUrl(Uri endpoint, string repo, string revision, string? subfolder, string file)
    {
        var path = subfolder is null ? file : subfolder + "/" + file;
        var escapedPath = string.Join('/', path.Split('/').Select(Uri.EscapeDataString));
        var builder = new UriBuilder(endpoint);
        builder.Path = $"{builder.Path.TrimEnd('/')}/{repo}/resolve/{Uri.EscapeDataString(revision)}/{escapedPath}";
        return builder.Uri;
    }

    private static bool TryLinkedSha256(HttpResponseHeaders headers, out string sha256)
    {
        sha256 = "";
        if (!headers.TryGetValues("X-Linked-Etag", out var values)) return false;
        var v = values.First().Trim().Trim('"');
        if (v.StartsWith("W/", StringComparison.Ordinal)) return false;
        if (v.Length != 64 || !v.All(Uri.IsHexDigit)) return false;
        sha256 = v.ToLowerInvariant();
        return true;
    }
}

/// <summary>Resolved Hub settings: configuration first, then the Hub's own environment variables.</summary>
internal sealed record HubSettings(Uri Endpoint, string? Token, string DefaultRevision)
{
    public static HubSettings From(Configuration.HubOptions options, Func<string, string?> environment)
    {
        var endpoint = options.Endpoint ?? environment("HF_ENDPOINT") ?? "https://huggingface.co";
        var token = options.Token ?? environment("HF_TOKEN");
        var tokenFile = options.TokenFile ?? environment("HF_TOKEN_PATH");
        if (string.IsNullOrEmpty(token) && !string.IsNullOrEmpty(tokenFile) && File.Exists(tokenFile))
            token = File.ReadAllText(tokenFile).Trim();
        return new HubSettings(new Uri(endpoint), string.IsNullOrEmpty(token) ? null : token, options.DefaultRevision);
    }

    // The token must never reach a log through a record's generated ToString.
    public override string ToString() => $"HubSettings {{ Endpoint = {Endpoint}, Token = {(Token is null ? "none" : "***")}, DefaultRevision = {DefaultRevision} }}";
}
