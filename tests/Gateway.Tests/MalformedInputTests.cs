using System.Net;
using System.Text;
using System.Text.Json;
using HybridServing.Gateway.Tests.Hosts;
using static HybridServing.Gateway.Tests.Hosts.Tables;

namespace HybridServing.Gateway.Tests;

/// <summary>One gateway and engine for the whole malformed-input corpus (over real HTTP).</summary>
public sealed class MalformedInputFixture : IAsyncLifetime
{
    internal FakeEngine Engine { get; private set; } = null!;
    internal FakeControlPlane ControlPlane { get; private set; } = null!;
    internal GatewayHost Gateway { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Engine = await FakeEngine.StartAsync("e1");
        ControlPlane = await FakeControlPlane.StartAsync(Table(1, [Tables.Engine("e1", Engine.Url)]));
        Gateway = await GatewayHost.StartAsync(ControlPlane.Url, new Dictionary<string, string?>
        {
            ["Gateway:MaxRequestBodyBytes"] = "65536",
            ["Gateway:Load:ScrapeInterval"] = "00:00:00",
        });
        await Gateway.WaitForTableAsync(1);
    }

    public async Task DisposeAsync()
    {
        await Gateway.DisposeAsync();
        await ControlPlane.DisposeAsync();
        await Engine.DisposeAsync();
    }
}

public sealed class MalformedInputTests(MalformedInputFixture fixture) : IClassFixture<MalformedInputFixture>
{
    [Theory]
    [InlineData("""{"model":"test/tiny","messages":[""", 400, "not valid JSON")]
    [InlineData("""{"model":""", 400, "not valid JSON")]
    [InlineData("""{"model":7}""", 400, "expected a string")]
    [InlineData("""{"model":["test/tiny"]}""", 400, "expected a string")]
    [InlineData("""{"messages":[]}""", 400, "Missing required parameter: 'model'.")]
    [InlineData("""[]""", 400, "must be a JSON object")]
    [InlineData("", 400, "empty")]
    [InlineData("""{"model":"test/tiny","model":"other"}""", 400, "more than once")]
    [InlineData("""{"model":"\ud83d"}""", 400, "not a valid Unicode string")]
    [InlineData("""{"model":"test/tiny\u0000"}""", 404, "does not exist")]
    [InlineData("""{"model":"ｔｅｓｔ/ｔｉｎｙ"}""", 404, "does not exist")]
    [InlineData("""{"model":"test/tiny\u200b"}""", 404, "does not exist")]
    [InlineData("""{"model":"TEST/TINY"}""", 404, "does not exist")]
    public async Task Bad_bodies_get_OpenAI_errors_and_never_reach_the_engine(string body, int status, string message)
    {
        var before = fixture.Engine.Received.Count;
        using var content = new StringContent(body, Encoding.UTF8, "application/json");
        using var response = await fixture.Gateway.Client.PostAsync("/v1/chat/completions", content);
        Assert.Equal(status, (int)response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var error = json.RootElement.GetProperty("error");
        Assert.Contains(message, error.GetProperty("message").GetString());
        Assert.Equal(status, error.GetProperty("code").GetInt32());
        Assert.Equal(before, fixture.Engine.Received.Count);
    }

    [Fact]
    public async Task Invalid_utf8_is_400()
    {
        byte[] body = [.. "{\"model\":\"test/tiny\",\"prompt\":\""u8, 0xFF, 0xFE, .. "\"}"u8];
        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new("application/json");
        using var response = await fixture.Gateway.Client.PostAsync("/v1/chat/completions", content);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
    }

    [Fact]
    public async Task Body_over_the_limit_is_413_with_content_length()
    {
        var big = """{"model":"test/tiny","prompt":" """ + new string('x', 70_000) + "\"}";
        using var content = new StringContent(big, Encoding.UTF8, "application/json");
        using var response = await fixture.Gateway.Client.PostAsync("/v1/completions", content);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Contains("65536 bytes", json.RootElement.GetProperty("error").GetProperty("message").GetString());
        Assert.Equal(413, json.RootElement.GetProperty("error").GetProperty("code").GetInt32());
    }

    [Fact]
    public async Task Body_over_the_limit_is_413_when_chunked()
    {
        var big = Encoding.UTF8.GetBytes("""{"model":"test/tiny","prompt":" """ + new string('x', 200_000) + "\"}");
        using var content = new StreamContent(new MemoryStream(big)); // no length: sent chunked
        content.Headers.ContentType = new("application/json");
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = content };
        request.Headers.TransferEncodingChunked = true;
        using var response = await fixture.Gateway.Client.SendAsync(request);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
    }

    [Fact]
    public async Task A_small_chunked_body_is_forwarded_with_its_length()
    {
        var body = Encoding.UTF8.GetBytes("""{"model":"test/tiny","prompt":"chunked-marker"}""");
        using var content = new StreamContent(new MemoryStream(body));
        content.Headers.ContentType = new("application/json");
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = content };
        request.Headers.TransferEncodingChunked = true;
        using var response = await fixture.Gateway.Client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains(fixture.Engine.Received, r => r.Body.AsSpan().SequenceEqual(body));
    }

    [Fact]
    public async Task A_body_just_under_the_limit_is_forwarded_whole()
    {
        var prefix = """{"model":"test/tiny","prompt":" """;
        var body = prefix + new string('y', 65536 - prefix.Length - 2) + "\"}";
        Assert.Equal(65536, Encoding.UTF8.GetByteCount(body));
        using var content = new StringContent(body, Encoding.UTF8, "application/json");
        using var response = await fixture.Gateway.Client.PostAsync("/v1/completions", content);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains(fixture.Engine.Received, r => r.Body.Length == 65536);
    }
}
