using System.Net;
using System.Text;
using System.Text.Json;
using HybridServing.Contracts.ControlPlane;
using HybridServing.Gateway.Tests.Hosts;
using static HybridServing.Gateway.Tests.Hosts.Tables;

namespace HybridServing.Gateway.Tests;

/// <summary>Milestone-1 path: real Kestrel gateway, fake ControlPlane (gRPC), fake engines (HTTP).</summary>
public sealed class ForwardingTests
{
    [Fact]
    public async Task Non_streaming_chat_is_forwarded_byte_for_byte_and_names_the_engine()
    {
        await using var engine = await FakeEngine.StartAsync("e1", "sql-lora");
        await using var cp = await FakeControlPlane.StartAsync(Table(1, [Engine("e1", engine.Url)], Adapter("sql-lora", endpoints: ("e1", Residency.Loaded))));
        await using var gw = await GatewayHost.StartAsync(cp.Url);
        await gw.WaitForTableAsync(1);

        const string body = """{ "model" : "sql-lora", "messages":[{"role":"user","content":"héllo \ud83d\ude00"}], "temperature": 0.5 }""";
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        request.Headers.Authorization = new("Bearer", "client-secret");
        using var response = await gw.Client.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("e1", Assert.Single(response.Headers.GetValues("x-hybridserving-engine")));
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("hello from e1", json.RootElement.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
        var received = Assert.Single(engine.Received);
        Assert.Equal(Encoding.UTF8.GetBytes(body), received.Body);
        Assert.Null(received.Authorization); // the client's gateway key never reaches the engine
    }

    [Fact]
    public async Task Streaming_passes_each_event_through_before_the_engine_finishes()
    {
        await using var engine = await FakeEngine.StartAsync("e1");
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        engine.HoldAfterFirstToken = gate;
        await using var cp = await FakeControlPlane.StartAsync(Table(1, [Engine("e1", engine.Url)]));
        await using var gw = await GatewayHost.StartAsync(cp.Url);
        await gw.WaitForTableAsync(1);

        using var response = await gw.Client.SendAsync(gw.Chat(Base, stream: true), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        // The engine is blocked after its first token: reading it proves nothing buffers the stream.
        var first = await reader.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.StartsWith("data: ", first);
        Assert.Contains("tok0", first);
        gate.SetResult();
        var rest = await reader.ReadToEndAsync();
        Assert.EndsWith("data: [DONE]\n\n", rest);
        Assert.Contains("tok4", rest);
    }

    [Fact]
    public async Task Completions_stream_too()
    {
        await using var engine = await FakeEngine.StartAsync("e1");
        await using var cp = await FakeControlPlane.StartAsync(Table(1, [Engine("e1", engine.Url)]));
        await using var gw = await GatewayHost.StartAsync(cp.Url);
        await gw.WaitForTableAsync(1);

        using var response = await gw.Client.SendAsync(gw.Chat(Base, stream: true, path: "/v1/completions"));
        var text = await response.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("\"object\":\"text_completion\"", text);
        Assert.EndsWith("data: [DONE]\n\n", text);
        Assert.Equal("/v1/completions", Assert.Single(engine.Received).Path);
    }

    [Fact]
    public async Task Client_cancellation_reaches_the_engine()
    {
        await using var engine = await FakeEngine.StartAsync("e1");
        engine.HoldAfterFirstToken = new TaskCompletionSource();
        await using var cp = await FakeControlPlane.StartAsync(Table(1, [Engine("e1", engine.Url)]));
        await using var gw = await GatewayHost.StartAsync(cp.Url);
        await gw.WaitForTableAsync(1);

        using var cts = new CancellationTokenSource();
        var response = await gw.Client.SendAsync(gw.Chat(Base, stream: true), HttpCompletionOption.ResponseHeadersRead, cts.Token);
        var stream = await response.Content.ReadAsStreamAsync(cts.Token);
        var buffer = new byte[64];
        Assert.True(await stream.ReadAsync(buffer, cts.Token) > 0);
        cts.Cancel();
        response.Dispose();
        await engine.ClientGone.Task.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task Unknown_model_is_404_in_OpenAI_shape_and_reaches_no_engine()
    {
        await using var engine = await FakeEngine.StartAsync("e1");
        await using var cp = await FakeControlPlane.StartAsync(Table(1, [Engine("e1", engine.Url)]));
        await using var gw = await GatewayHost.StartAsync(cp.Url);
        await gw.WaitForTableAsync(1);

        using var response = await gw.Client.SendAsync(gw.Chat("no-such-model"));
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var error = json.RootElement.GetProperty("error");
        Assert.Equal("The model `no-such-model` does not exist.", error.GetProperty("message").GetString());
        Assert.Equal("NotFoundError", error.GetProperty("type").GetString());
        Assert.Equal("model", error.GetProperty("param").GetString());
        Assert.Equal(404, error.GetProperty("code").GetInt32());
        Assert.Empty(engine.Received);
    }

    [Fact]
    public async Task Models_lists_base_models_and_loaded_adapters_with_parent()
    {
        await using var cp = await FakeControlPlane.StartAsync(Table(3,
            [Engine("e1", new Uri("http://127.0.0.1:1")), Engine("e2", new Uri("http://127.0.0.1:2"))],
            Adapter("sql-lora", endpoints: ("e1", Residency.Loaded)),
            Adapter("support-a", endpoints: [("e1", Residency.Loading), ("e2", Residency.Loaded)]),
            Adapter("still-loading", endpoints: ("e2", Residency.Loading)),
            Adapter("nowhere")));
        await using var gw = await GatewayHost.StartAsync(cp.Url, new Dictionary<string, string?> { ["Gateway:Load:ScrapeInterval"] = "00:00:00" });
        await gw.WaitForTableAsync(3);

        using var json = JsonDocument.Parse(await gw.Client.GetStringAsync("/v1/models"));
        Assert.Equal("list", json.RootElement.GetProperty("object").GetString());
        var cards = json.RootElement.GetProperty("data").EnumerateArray().ToList();
        Assert.Equal(["test/tiny", "sql-lora", "support-a"], cards.Select(c => c.GetProperty("id").GetString()));
        Assert.Equal(JsonValueKind.Null, cards[0].GetProperty("parent").ValueKind);
        Assert.All(cards.Skip(1), c => Assert.Equal("test/tiny", c.GetProperty("parent").GetString()));
        Assert.All(cards, c => Assert.Equal("model", c.GetProperty("object").GetString()));

        using var one = await gw.Client.GetAsync("/v1/models/sql-lora");
        Assert.Equal(HttpStatusCode.OK, one.StatusCode);
        using var missing = await gw.Client.GetAsync("/v1/models/still-loading");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
    }

    [Fact]
    public async Task Adapter_requests_go_only_where_the_adapter_is_loaded()
    {
        await using var a = await FakeEngine.StartAsync("a");
        await using var b = await FakeEngine.StartAsync("b", "sql-lora");
        await using var c = await FakeEngine.StartAsync("c");
        await using var cp = await FakeControlPlane.StartAsync(Table(1, [Engine("a", a.Url), Engine("b", b.Url), Engine("c", c.Url)],
            Adapter("sql-lora", endpoints: [("a", Residency.Loading), ("b", Residency.Loaded)])));
        await using var gw = await GatewayHost.StartAsync(cp.Url);
        await gw.WaitForTableAsync(1);

        for (var i = 0; i < 12; i++)
        {
            using var response = await gw.Client.SendAsync(gw.Chat("sql-lora", stream: i % 2 == 0));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("b", response.Headers.GetValues("x-hybridserving-engine").Single());
        }
        Assert.Empty(a.Received);
        Assert.Empty(c.Received);
        Assert.Equal(12, b.Received.Count);

        // Base-model requests may use every engine.
        var served = new HashSet<string>();
        for (var i = 0; i < 30; i++)
        {
            using var response = await gw.Client.SendAsync(gw.Chat(Base));
            served.Add(response.Headers.GetValues("x-hybridserving-engine").Single());
        }
        Assert.True(served.Count >= 2, $"base-model traffic went only to {string.Join(",", served)}");
    }

    [Fact]
    public async Task Engine_header_can_be_turned_off()
    {
        await using var engine = await FakeEngine.StartAsync("e1");
        await using var cp = await FakeControlPlane.StartAsync(Table(1, [Engine("e1", engine.Url)]));
        await using var gw = await GatewayHost.StartAsync(cp.Url, new Dictionary<string, string?> { ["Gateway:EngineHeader"] = "" });
        await gw.WaitForTableAsync(1);
        using var response = await gw.Client.SendAsync(gw.Chat(Base));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.False(response.Headers.Contains("x-hybridserving-engine"));
    }

    [Fact]
    public async Task Health_is_unhealthy_until_the_first_table_and_the_subscriber_reconnects()
    {
        await using var engine = await FakeEngine.StartAsync("e1");
        await using var cp = await FakeControlPlane.StartAsync();
        await using var gw = await GatewayHost.StartAsync(cp.Url);
        using (var before = await gw.Client.GetAsync("/health"))
            Assert.Equal(HttpStatusCode.ServiceUnavailable, before.StatusCode);

        cp.Publish(Table(1, [Engine("e1", engine.Url)]));
        await gw.WaitForTableAsync(1);
        using (var after = await gw.Client.GetAsync("/health"))
            Assert.Equal(HttpStatusCode.OK, after.StatusCode);

        // The ControlPlane ends the stream; the gateway keeps its table and picks up the next one.
        cp.DropWatchers();
        cp.Publish(Table(2, [Engine("e1", engine.Url)], Adapter("late", endpoints: ("e1", Residency.Loaded))));
        await gw.WaitForTableAsync(2);
        engine.Models.Add("late");
        using var response = await gw.Client.SendAsync(gw.Chat("late"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task A_removed_adapter_answers_404()
    {
        await using var engine = await FakeEngine.StartAsync("e1", "sql-lora");
        await using var cp = await FakeControlPlane.StartAsync(Table(1, [Engine("e1", engine.Url)], Adapter("sql-lora", endpoints: ("e1", Residency.Loaded))));
        await using var gw = await GatewayHost.StartAsync(cp.Url);
        await gw.WaitForTableAsync(1);
        using (var ok = await gw.Client.SendAsync(gw.Chat("sql-lora")))
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        cp.Publish(Table(2, [Engine("e1", engine.Url)]));
        await gw.WaitForTableAsync(2);
        using var gone = await gw.Client.SendAsync(gw.Chat("sql-lora"));
        Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
    }
}
