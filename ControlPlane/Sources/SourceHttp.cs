using System.Net;
using System.Net.Http.Headers;
using HybridServing.Contracts.Net;
using HybridServing.Contracts.Resources;
using Microsoft.Extensions.Options;

namespace HybridServing.ControlPlane.Sources;

/// <summary>
/// HTTP for remote sources (the Hub and plain HTTP): every call has the <c>SourceRequestTimeout</c> deadline, bodies
/// are read only as far as needed (a server that ignores <c>Range</c> is cut off after the bytes asked for), a bearer
/// token is never sent over plain HTTP to a remote host, and messages show URLs without their query (signed URLs
/// carry credentials there). HttpClient drops the Authorization header when it follows a redirect (the Hub sends
/// LFS files to a CDN), so the token stays with the endpoint it was meant for.
/// </summary>
internal sealed class SourceHttp : IDisposable
{
    private readonly HttpClient _client;

    public const string GuardOption = "ControlPlane:Sources:Http";

    /// <summary>With the SSRF guard of <c>ControlPlane:Sources:Http</c>; the Hub endpoint (ControlPlane:HubEndpoint, else
    /// HF_ENDPOINT, else huggingface.co) is trusted, the hosts it redirects to are checked.</summary>
    public SourceHttp(IOptions<SourceOptions> options, SourceEnvironment environment)
        : this(options.Value.SourceRequestTimeout, new OutboundGuard(options.Value.Sources.Http.AllowedHosts, options.Value.Sources.Http.AllowPrivateNetworks,
            [new Uri(options.Value.HubEndpoint ?? environment.Get("HF_ENDPOINT") ?? "https://huggingface.co")], GuardOption)) { }

    /// <summary>Without <paramref name="guard"/>, any address may be fetched (tests of other behaviour).</summary>
    public SourceHttp(TimeSpan timeout, OutboundGuard? guard = null)
    {
        Timeout = timeout;
        var handler = new SocketsHttpHandler
        {
            AllowAutoRedirect = true,
            MaxAutomaticRedirections = 5,
            ConnectTimeout = timeout,
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
            AutomaticDecompression = DecompressionMethods.None,
        };
        _client = new HttpClient(guard?.Apply(handler) ?? handler) { Timeout = System.Threading.Timeout.InfiniteTimeSpan };
    }

    public TimeSpan Timeout { get; }

    /// <summary>Status reason of a source the SSRF guard refused (as the sidecars report it).</summary>
    public const string AddressNotAllowed = "AddressNotAllowed";

    /// <summary><see cref="Display(Uri)"/> for an adapter's uri as a string (http(s) URLs; hf://, s3:// and paths carry no query).</summary>
    public static string Display(string uri) =>
        uri.Contains('?') && System.Uri.TryCreate(uri, UriKind.Absolute, out var url) ? Display(url) : uri;

    /// <summary>A URL as messages may show it.</summary>
    public static string Display(Uri url) => string.IsNullOrEmpty(url.Query) ? url.AbsoluteUri : url.GetLeftPart(UriPartial.Path) + "?…";

    /// <summary>May a bearer token go to <paramref name="url"/>? Only over TLS, or to this machine.</summary>
    public static bool MaySendToken(Uri url) => url.Scheme == Uri.UriSchemeHttps || url.IsLoopback;

    /// <summary>
    /// Sends a GET and hands the response to <paramref name="read"/> within one deadline. Connection failures and
    /// time-outs are <see cref="SourceException"/>s (the source is unreachable); 401/403 too (credentials).
    /// </summary>
    public async Task<T> GetAsync<T>(Uri url, string? token, RangeHeaderValue? range, Func<HttpResponseMessage, CancellationToken, Task<T>> read, CancellationToken cancellationToken)
    {
        if (token is not null && !MaySendToken(url))
            throw new SourceException(LoraAdapterReasons.SourceUnavailable, $"refusing to send the access token over plain HTTP to {url.Host}; use an https endpoint.");
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(Timeout);
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        if (token is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        request.Headers.Range = range;
        try
        {
            using var response = await _client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, deadline.Token);
            if (response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
                throw token is null
                    ? new SourceException(LoraAdapterReasons.CredentialsMissing,
                        $"GET {Display(url)} answered {(int)response.StatusCode}: the source needs credentials and none are configured (spec.credentialsSecretRef).")
                    : new SourceException(LoraAdapterReasons.SourceUnavailable,
                        $"GET {Display(url)} answered {(int)response.StatusCode}: the configured credentials were refused.");
            return await read(response, deadline.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new SourceException(LoraAdapterReasons.SourceUnavailable, $"GET {Display(url)} timed out after {Timeout.TotalSeconds:0.###} s.");
        }
        catch (HttpRequestException e) when (AddressNotAllowedException.Find(e) is { } refused)
        {
            throw new SourceException(AddressNotAllowed, $"GET {Display(url)} refused: {refused.Message}", e);
        }
        catch (HttpRequestException e)
        {
            throw new SourceException(LoraAdapterReasons.SourceUnavailable, $"GET {Display(url)} failed: {e.Message}", e);
        }
        catch (IOException e)
        {
            throw new SourceException(LoraAdapterReasons.SourceUnavailable, $"GET {Display(url)} broke off: {e.Message}", e);
        }
    }

    /// <summary>A whole small file (at most <paramref name="maxBytes"/>); null on 404.</summary>
    public Task<byte[]?> GetSmallFileAsync(Uri url, string? token, long maxBytes, CancellationToken cancellationToken) =>
        GetAsync(url, token, null, async (response, ct) =>
        {
            if (response.StatusCode == HttpStatusCode.NotFound) return null;
            EnsureSuccess(url, response);
            if (response.Content.Headers.ContentLength is { } length && length > maxBytes)
                throw new Contracts.Peft.PeftFormatException($"{Path.GetFileName(url.AbsolutePath)} is {length} bytes; the limit is {maxBytes}.");
            var bytes = await ReadAtMostAsync(response, maxBytes + 1, ct);
            if (bytes.Length > maxBytes)
                throw new Contracts.Peft.PeftFormatException($"{Path.GetFileName(url.AbsolutePath)} is larger than the limit of {maxBytes} bytes.");
            return bytes;
        }, cancellationToken);

    /// <summary>
    /// <paramref name="length"/> bytes from <paramref name="offset"/> with a ranged GET; null on 404. The total length
    /// comes from Content-Range (206), Content-Length (200: the server ignored the range, and only the bytes needed
    /// are read before the connection is dropped), or <paramref name="knownLength"/>.
    /// </summary>
    public Task<RangeRead?> GetRangeAsync(Uri url, string? token, long offset, int length, long? knownLength, CancellationToken cancellationToken,
        Action<HttpResponseHeaders>? onHeaders = null) =>
        GetAsync(url, token, new RangeHeaderValue(offset, offset + length - 1), async (response, ct) =>
        {
            if (response.StatusCode == HttpStatusCode.NotFound) return null;
            onHeaders?.Invoke(response.Headers);
            if (response.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
            {
                // The file is shorter than the range: nothing of it is there.
                var total = response.Content.Headers.ContentRange?.Length ?? knownLength ?? offset;
                return new RangeRead([], total);
            }
            EnsureSuccess(url, response);
            long totalLength;
            if (response.StatusCode == HttpStatusCode.PartialContent)
            {
                var contentRange = response.Content.Headers.ContentRange;
                if (contentRange is null || contentRange.From != offset)
                    throw new AdapterReadException(LoraAdapterReasons.SourceUnavailable,
                        $"GET {Display(url)} answered bytes {contentRange?.From}-{contentRange?.To} for a range starting at {offset}.");
                totalLength = contentRange.Length ?? knownLength
                    ?? throw new AdapterReadException(LoraAdapterReasons.SourceUnavailable, $"GET {Display(url)} does not say how long the file is.");
                return new RangeRead(await ReadAtMostAsync(response, length, ct), totalLength);
            }
            totalLength = response.Content.Headers.ContentLength ?? knownLength
                ?? throw new AdapterReadException(LoraAdapterReasons.SourceUnavailable, $"GET {Display(url)} ignores ranges and does not say how long the file is.");
            await using var stream = await response.Content.ReadAsStreamAsync(ct);
            var skip = new byte[Math.Min(offset, 64 * 1024)];
            for (var left = offset; left > 0;)
            {
                var n = await stream.ReadAsync(skip.AsMemory(0, (int)Math.Min(left, skip.Length)), ct);
                if (n == 0) return new RangeRead([], totalLength);
                left -= n;
            }
            var buffer = new byte[length];
            var read = await stream.ReadAtLeastAsync(buffer, length, throwOnEndOfStream: false, ct);
            return new RangeRead(read == length ? buffer : buffer[..read], totalLength);
        }, cancellationToken);

    public static void EnsureSuccess(Uri url, HttpResponseMessage response)
    {
        if (!response.IsSuccessStatusCode)
            throw new AdapterReadException(LoraAdapterReasons.SourceUnavailable, $"GET {Display(url)} answered {(int)response.StatusCode} {response.ReasonPhrase}.");
    }

    public static async Task<byte[]> ReadAtMostAsync(HttpResponseMessage response, long maxBytes, CancellationToken cancellationToken)
    {
        await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
        using var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        while (buffer.Length < maxBytes)
        {
            var n = await stream.ReadAsync(chunk.AsMemory(0, (int)Math.Min(chunk.Length, maxBytes - buffer.Length)), cancellationToken);
            if (n == 0) break;
            buffer.Write(chunk, 0, n);
        }
        return buffer.ToArray();
    }

    /// <summary>Appends path segments (adapter names and PEFT file names: nothing to escape) to a base URL, keeping its
    /// query, as the sidecar does.</summary>
    public static Uri Combine(Uri baseUrl, params string[] segments)
    {
        var builder = new UriBuilder(baseUrl);
        builder.Path = builder.Path.TrimEnd('/') + "/" + string.Join('/', segments);
        return builder.Uri;
    }

    public void Dispose() => _client.Dispose();
}
