using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace HybridServing.MockEngine.Tests;

/// <summary>Small helpers for talking to an engine over real HTTP.</summary>
internal static class Http
{
    public static HttpClient Client(Uri baseUrl, string? bearer = null)
    {
        var client = new HttpClient { BaseAddress = baseUrl, Timeout = TimeSpan.FromSeconds(30) };
        if (bearer is not null) client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        return client;
    }

    public static Task<HttpResponseMessage> PostJson(this HttpClient client, string path, string json) =>
        client.PostAsync(path, new StringContent(json, Encoding.UTF8, "application/json"));

    public static async Task<(int Status, JsonElement Body, string Text)> Send(this HttpClient client, string path, string json)
    {
        using var response = await client.PostJson(path, json);
        var text = await response.Content.ReadAsStringAsync();
        JsonElement body = default;
        try { body = JsonDocument.Parse(text).RootElement.Clone(); } catch (JsonException) { }
        return ((int)response.StatusCode, body, text);
    }

    public static void AssertError(this (int Status, JsonElement Body, string Text) r, int status, string type, string message)
    {
        Assert.True(r.Status == status, $"status {r.Status}, body {r.Text}");
        var error = r.Body.GetProperty("error");
        Assert.Equal(type, error.GetProperty("type").GetString());
        Assert.Equal(message, error.GetProperty("message").GetString());
        Assert.Equal(status, error.GetProperty("code").GetInt32());
        // vLLM's bytes, not only its parsed value: quotes and apostrophes appear as themselves, never \u0027.
        var raw = "\"message\":\"" + message.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";
        Assert.True(r.Text.Contains(raw, StringComparison.Ordinal), $"body is not vLLM's bytes: expected {raw} in {r.Text}");
    }

    public static string Json(object value) => JsonSerializer.Serialize(value);
}
