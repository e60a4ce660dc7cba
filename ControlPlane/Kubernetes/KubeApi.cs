using System.Net;
using System.Net.Http.Headers;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using k8s;

namespace HybridServing.ControlPlane.Kubernetes;

/// <summary>An API server answer that is not a success, with the code of its <c>Status</c> (410, 409, 404...).</summary>
internal sealed class KubeApiException(int code, string? reason, string message) : Exception(message)
{
    /// <summary>The HTTP status, or the <c>code</c> of an ERROR watch event's Status.</summary>
    public int Code { get; } = code;

    /// <summary>The Status reason (informational only: decisions match <see cref="Code"/>, never this text).</summary>
    public string? Reason { get; } = reason;

    public bool IsGone => Code == (int)HttpStatusCode.Gone;
    public bool IsConflict => Code == (int)HttpStatusCode.Conflict;
    public bool IsNotFound => Code == (int)HttpStatusCode.NotFound;
}

/// <summary>One event of a watch stream: ADDED, MODIFIED, DELETED, BOOKMARK (ERROR is thrown as a <see cref="KubeApiException"/>).</summary>
internal readonly record struct WatchEvent(string Type, JsonElement Object);

/// <summary>A page of a list: raw items, the list's resourceVersion and the continue token.</summary>
internal sealed record ListPage(IReadOnlyList<JsonElement> Items, string ResourceVersion, string? Continue);

/// <summary>
/// The few raw REST calls the Kubernetes home makes, through KubernetesClient's configured HttpClient
/// and credentials (so TLS, tokens and kubeconfig work exactly as for the generated client). Raw,
/// because an informer must see a watch's ERROR event's code and its bookmarks itself, and a status
/// write must see a 409 as a value, not as an exception buried in a generated method.
/// </summary>
internal sealed class KubeApi(k8s.Kubernetes client)
{
    public IKubernetes Client => client;

    public async Task<ListPage> ListAsync(string path, string? labelSelector, int limit, string? continueToken, CancellationToken ct)
    {
        var query = new List<string> { $"limit={limit}" };
        if (!string.IsNullOrEmpty(labelSelector)) query.Add("labelSelector=" + Uri.EscapeDataString(labelSelector));
        if (!string.IsNullOrEmpty(continueToken)) query.Add("continue=" + Uri.EscapeDataString(continueToken));
        using var doc = await SendJsonAsync(HttpMethod.Get, path + "?" + string.Join('&', query), null, null, ct);
        var root = doc.RootElement;
        var meta = root.TryGetProperty("metadata", out var m) ? m : default;
        var rv = meta.ValueKind == JsonValueKind.Object && meta.TryGetProperty("resourceVersion", out var r) ? r.GetString() ?? "" : "";
        var cont = meta.ValueKind == JsonValueKind.Object && meta.TryGetProperty("continue", out var c) ? c.GetString() : null;
        var items = root.TryGetProperty("items", out var i) && i.ValueKind == JsonValueKind.Array
            ? i.EnumerateArray().Select(e => e.Clone()).ToList()
            : [];
        return new ListPage(items, rv, string.IsNullOrEmpty(cont) ? null : cont);
    }

    /// <summary>
    /// Streams a watch from <paramref name="resourceVersion"/> with bookmarks. Ends when the server ends the
    /// stream; throws <see cref="KubeApiException"/> for an ERROR event (e.g. 410 when the version is too old).
    /// </summary>
    public async IAsyncEnumerable<WatchEvent> WatchAsync(string path, string? labelSelector, string resourceVersion, int timeoutSeconds,
        [EnumeratorCancellation] CancellationToken ct)
    {
        var query = new List<string> { "watch=true", "allowWatchBookmarks=true", "resourceVersion=" + Uri.EscapeDataString(resourceVersion), $"timeoutSeconds={timeoutSeconds}" };
        if (!string.IsNullOrEmpty(labelSelector)) query.Add("labelSelector=" + Uri.EscapeDataString(labelSelector));
        using var request = CreateRequest(HttpMethod.Get, path + "?" + string.Join('&', query), null, null);
        if (client.Credentials is { } credentials) await credentials.ProcessHttpRequestAsync(request, ct);
        using var response = await client.HttpClient.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        if (!response.IsSuccessStatusCode) throw await ErrorAsync(response, ct);
        await using var stream = await response.Content.ReadAsStreamAsync(ct);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        while (true)
        {
            var line = await reader.ReadLineAsync(ct);
            if (line is null) yield break;
            if (line.Length == 0) continue;
            using var doc = JsonDocument.Parse(line);
            var type = doc.RootElement.TryGetProperty("type", out var t) ? t.GetString() ?? "" : "";
            var obj = doc.RootElement.TryGetProperty("object", out var o) ? o.Clone() : default;
            if (type == "ERROR") throw StatusError(obj, "the watch ended with an ERROR event");
            yield return new WatchEvent(type, obj);
        }
    }

    public Task<JsonDocument> GetAsync(string path, CancellationToken ct) => SendJsonAsync(HttpMethod.Get, path, null, null, ct);

    public Task<JsonDocument> PutAsync(string path, JsonNode body, CancellationToken ct) =>
        SendJsonAsync(HttpMethod.Put, path, body.ToJsonString(), "application/json", ct);

    public Task<JsonDocument> MergePatchAsync(string path, JsonNode patch, CancellationToken ct) =>
        SendJsonAsync(HttpMethod.Patch, path, patch.ToJsonString(), "application/merge-patch+json", ct);

    public Task<JsonDocument> DeleteAsync(string path, CancellationToken ct) => SendJsonAsync(HttpMethod.Delete, path, null, null, ct);

    public Task<JsonDocument> PostAsync(string path, string json, CancellationToken ct) =>
        SendJsonAsync(HttpMethod.Post, path, json, "application/json", ct);

    private async Task<JsonDocument> SendJsonAsync(HttpMethod method, string pathAndQuery, string? body, string? contentType, CancellationToken ct)
    {
        using var request = CreateRequest(method, pathAndQuery, body, contentType);
        if (client.Credentials is { } credentials) await credentials.ProcessHttpRequestAsync(request, ct);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        // Watches run without a deadline; a plain call gets the client's configured one.
        if (client.HttpClientTimeout > TimeSpan.Zero && client.HttpClientTimeout != Timeout.InfiniteTimeSpan) timeout.CancelAfter(client.HttpClientTimeout);
        using var response = await client.HttpClient.SendAsync(request, HttpCompletionOption.ResponseContentRead, timeout.Token);
        if (!response.IsSuccessStatusCode) throw await ErrorAsync(response, ct);
        var text = await response.Content.ReadAsStringAsync(ct);
        return JsonDocument.Parse(text.Length == 0 ? "{}" : text);
    }

    private HttpRequestMessage CreateRequest(HttpMethod method, string pathAndQuery, string? body, string? contentType)
    {
        var request = new HttpRequestMessage(method, new Uri(client.BaseUri, pathAndQuery.TrimStart('/')));
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        if (body is not null)
            request.Content = new StringContent(body, Encoding.UTF8, MediaTypeHeaderValue.Parse(contentType ?? "application/json"));
        return request;
    }

    private static async Task<KubeApiException> ErrorAsync(HttpResponseMessage response, CancellationToken ct)
    {
        var code = (int)response.StatusCode;
        string text;
        try { text = await response.Content.ReadAsStringAsync(ct); }
        catch (Exception e) when (e is IOException or HttpRequestException) { text = ""; }
        try
        {
            using var doc = JsonDocument.Parse(text);
            var status = StatusError(doc.RootElement, $"HTTP {code}");
            return new KubeApiException(code, status.Reason, status.Message);
        }
        catch (JsonException)
        {
            return new KubeApiException(code, null, $"HTTP {code} {response.ReasonPhrase}: {Truncate(text)}");
        }
    }

    private static KubeApiException StatusError(JsonElement status, string fallback)
    {
        if (status.ValueKind != JsonValueKind.Object) return new KubeApiException(0, null, fallback);
        var code = status.TryGetProperty("code", out var c) && c.ValueKind == JsonValueKind.Number && c.TryGetInt32(out var n) ? n : 0;
        var reason = status.TryGetProperty("reason", out var r) ? r.GetString() : null;
        var message = status.TryGetProperty("message", out var m) ? m.GetString() : null;
        return new KubeApiException(code, reason, message is { Length: > 0 } ? $"{message} ({code})" : $"{fallback} ({code} {reason})");
    }

    private static string Truncate(string s) => s.Length <= 200 ? s : s[..200] + "…";
}
