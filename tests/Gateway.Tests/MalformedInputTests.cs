using System.Net;
using System.Net.Sockets;
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
            ["Gateway:RequestBodyTimeout"] = "00:00:01.500",
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
    [InlineData("""{"model":"test/tiny\u0000","messages":[]}""", 404, "does not exist")]
    [InlineData("""{"model":"ｔｅｓｔ/ｔｉｎｙ","messages":[]}""", 404, "does not exist")]
    [InlineData("""{"model":"test/tiny\u200b","messages":[]}""", 404, "does not exist")]
    [InlineData("""{"model":"TEST/TINY","messages":[]}""", 404, "does not exist")]
    [InlineData("""{"model":"test/tiny"}""", 400, "Missing required parameter: 'messages'.")]
    [InlineData("""{"model":"test/tiny","messages":"hi"}""", 400, "Invalid type for 'messages': expected an array, but got a string.")]
    [InlineData("""{"model":"test/tiny","messages":[],"stream":"yes"}""", 400, "Invalid type for 'stream': expected a boolean or null, but got a string.")]
    [InlineData("""{"model":"test/tiny","messages":[],"max_tokens":"5"}""", 400, "Invalid type for 'max_tokens': expected an integer or null, but got a string.")]
    [InlineData("""{"model":"test/tiny","messages":[],"max_tokens":2.5}""", 400, "Invalid type for 'max_tokens': expected an integer or null, but got a decimal number.")]
    [InlineData("""{"model":"test/tiny","messages":[],"temperature":[1]}""", 400, "Invalid type for 'temperature': expected a number or null, but got an array.")]
    [InlineData("""{"model":"test/tiny","messages":[],"stream_options":true}""", 400, "Invalid type for 'stream_options': expected an object or null, but got a boolean.")]
    [InlineData("""{"model":"test/tiny","messages":[],"stop":{"a":1}}""", 400, "Invalid type for 'stop': expected a string, an array or null, but got an object.")]
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

    [Theory]
    [InlineData("""{"model":"test/tiny"}""", "Missing required parameter: 'prompt'.")]
    [InlineData("""{"model":"test/tiny","prompt":7}""", "Invalid type for 'prompt': expected a string or an array, but got a number.")]
    [InlineData("""{"model":"test/tiny","prompt":"hi","n":true}""", "Invalid type for 'n': expected an integer or null, but got a boolean.")]
    public async Task Completions_bodies_of_the_wrong_shape_are_400(string body, string message)
    {
        var before = fixture.Engine.Received.Count;
        using var content = new StringContent(body, Encoding.UTF8, "application/json");
        using var response = await fixture.Gateway.Client.PostAsync("/v1/completions", content);
        var error = await ErrorAsync(response, 400);
        Assert.Equal(message, error.GetProperty("message").GetString());
        Assert.Equal(before, fixture.Engine.Received.Count);
    }

    [Theory]
    [InlineData("""{"model":"test/tiny","prompt":"hi","max_tokens":3.0,"temperature":1,"stop":null,"stream":false}""")]
    [InlineData("""{"model":"test/tiny","prompt_embeds":"AAAA"}""")]
    public async Task Completions_bodies_of_the_right_shape_are_forwarded(string body)
    {
        using var content = new StringContent(body, Encoding.UTF8, "application/json");
        using var response = await fixture.Gateway.Client.PostAsync("/v1/completions", content);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains(fixture.Engine.Received, r => r.Body.AsSpan().SequenceEqual(Encoding.UTF8.GetBytes(body)));
    }

    [Fact]
    public async Task A_deeply_nested_body_is_400_naming_the_depth()
    {
        var before = fixture.Engine.Received.Count;
        var body = """{"model":"test/tiny","messages":[{"role":"user","content":"hi"}],"extra":""" + new string('[', 30_000) + new string(']', 30_000) + "}";
        using var content = new StringContent(body, Encoding.UTF8, "application/json");
        using var response = await fixture.Gateway.Client.PostAsync("/v1/chat/completions", content);
        var error = await ErrorAsync(response, 400);
        Assert.Contains("depth", error.GetProperty("message").GetString());
        Assert.Equal(before, fixture.Engine.Received.Count);
    }

    [Theory]
    [InlineData("text/plain")]
    [InlineData("application/x-www-form-urlencoded")]
    [InlineData("multipart/form-data; boundary=x")]
    [InlineData("application/json; charset=iso-8859-1")]
    [InlineData("application/jsonx")]
    public async Task A_body_that_is_not_JSON_by_content_type_is_415(string contentType)
    {
        var before = fixture.Engine.Received.Count;
        using var content = new ByteArrayContent("""{"model":"test/tiny","messages":[]}"""u8.ToArray());
        content.Headers.TryAddWithoutValidation("Content-Type", contentType);
        using var response = await fixture.Gateway.Client.PostAsync("/v1/chat/completions", content);
        var error = await ErrorAsync(response, 415);
        Assert.Equal("UnsupportedMediaTypeError", error.GetProperty("type").GetString());
        Assert.Contains("application/json", error.GetProperty("message").GetString());
        Assert.Equal(before, fixture.Engine.Received.Count);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("application/json; charset=UTF-8")]
    [InlineData("Application/JSON")]
    public async Task JSON_or_no_content_type_is_accepted(string? contentType)
    {
        var body = Encoding.UTF8.GetBytes($$"""{"model":"test/tiny","prompt":"ct-{{contentType}}"}""");
        using var content = new ByteArrayContent(body);
        if (contentType is not null) content.Headers.TryAddWithoutValidation("Content-Type", contentType);
        using var response = await fixture.Gateway.Client.PostAsync("/v1/completions", content);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains(fixture.Engine.Received, r => r.Body.AsSpan().SequenceEqual(body));
    }

    [Fact]
    public async Task A_slow_loris_upload_gets_408_within_the_body_timeout_and_is_never_forwarded()
    {
        var before = fixture.Engine.Received.Count;
        // 300 bytes/s: above Kestrel's minimum data rate, so only the gateway's own 1.5 s body timeout stops it.
        var (status, body) = await TrickleAsync(fixture.Gateway.Url, TimeSpan.FromMilliseconds(100), 30, TimeSpan.FromSeconds(15));
        Assert.Equal(408, status);
        using var json = JsonDocument.Parse(body);
        Assert.Equal("RequestTimeoutError", json.RootElement.GetProperty("error").GetProperty("type").GetString());
        Assert.Contains("did not arrive within 1.5 s", json.RootElement.GetProperty("error").GetProperty("message").GetString());
        Assert.Equal(before, fixture.Engine.Received.Count);
    }

    [Fact]
    public async Task An_upload_below_the_minimum_data_rate_gets_408()
    {
        await using var gw = await GatewayHost.StartAsync(fixture.ControlPlane.Url, new Dictionary<string, string?>
        {
            ["Gateway:RequestBodyTimeout"] = "00:05:00",
            ["Gateway:Load:ScrapeInterval"] = "00:00:00",
        });
        await gw.WaitForTableAsync(1);
        var before = fixture.Engine.Received.Count;
        // 2 bytes/s: Kestrel's minimum rate (240 bytes/s after a 5 s grace period) ends it, not the 5 minute timeout.
        var (status, body) = await TrickleAsync(gw.Url, TimeSpan.FromMilliseconds(500), 1, TimeSpan.FromSeconds(30));
        Assert.Equal(408, status);
        using var json = JsonDocument.Parse(body);
        Assert.Contains("minimum data rate", json.RootElement.GetProperty("error").GetProperty("message").GetString());
        Assert.Equal(before, fixture.Engine.Received.Count);
    }

    [Fact]
    public async Task A_body_cut_short_is_never_forwarded()
    {
        var before = fixture.Engine.Received.Count;
        using (var tcp = new TcpClient())
        {
            await tcp.ConnectAsync(fixture.Gateway.Url.Host, fixture.Gateway.Url.Port);
            var stream = tcp.GetStream();
            var partial = """{"model":"test/tiny","messages":[]}"""u8.ToArray();
            await stream.WriteAsync(Encoding.ASCII.GetBytes(
                $"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {partial.Length + 50}\r\n\r\n"));
            await stream.WriteAsync(partial);
            tcp.Client.Shutdown(SocketShutdown.Send);
            using var reader = new StreamReader(stream);
            try { await reader.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(10)); }
            catch (IOException) { } // the gateway may reset the connection
        }
        // A well-formed request afterwards is served, and it is the only one the engine saw.
        using var ok = await fixture.Gateway.Client.SendAsync(fixture.Gateway.Chat("test/tiny"));
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        Assert.Equal(before + 1, fixture.Engine.Received.Count);
    }

    /// <summary>Sends a chat request's headers, then <paramref name="bytesPerTick"/> body bytes every <paramref name="tick"/>
    /// until the gateway answers; returns its status and body.</summary>
    private static async Task<(int Status, string Body)> TrickleAsync(Uri gateway, TimeSpan tick, int bytesPerTick, TimeSpan limit)
    {
        using var cts = new CancellationTokenSource(limit);
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(gateway.Host, gateway.Port, cts.Token);
        var stream = tcp.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n"), cts.Token);
        var response = new MemoryStream();
        var readTask = stream.CopyToAsync(response, cts.Token);
        try
        {
            while (!readTask.IsCompleted)
            {
                await stream.WriteAsync(Encoding.ASCII.GetBytes(new string(' ', bytesPerTick)), cts.Token);
                await Task.WhenAny(readTask, Task.Delay(tick, cts.Token));
                if (response.Length > 0 && HasWholeResponse(response)) break;
            }
        }
        catch (IOException) { } // the gateway closed the connection after answering
        catch (SocketException) { }
        await Task.WhenAny(readTask, Task.Delay(TimeSpan.FromSeconds(2), cts.Token));
        var text = Encoding.UTF8.GetString(response.ToArray());
        var status = int.Parse(text.Split(' ', 3)[1], System.Globalization.CultureInfo.InvariantCulture);
        return (status, text[(text.IndexOf("\r\n\r\n", StringComparison.Ordinal) + 4)..]);
    }

    private static bool HasWholeResponse(MemoryStream response)
    {
        var text = Encoding.UTF8.GetString(response.ToArray());
        var end = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        if (end < 0) return false;
        var length = text.Split("\r\n").FirstOrDefault(h => h.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase));
        return length is not null && text.Length - end - 4 >= int.Parse(length["Content-Length:".Length..].Trim(), System.Globalization.CultureInfo.InvariantCulture);
    }

    private static async Task<JsonElement> ErrorAsync(HttpResponseMessage response, int status)
    {
        Assert.Equal(status, (int)response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var error = json.RootElement.GetProperty("error").Clone();
        Assert.Equal(status, error.GetProperty("code").GetInt32());
        return error;
    }
}
