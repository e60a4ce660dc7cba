using System.Net;
using System.Text;
using System.Text.Json;
using HybridServing.TestKit;

namespace HybridServing.MockEngine.Tests;

/// <summary>Every row of the protocol document's load/unload tables, over real HTTP.</summary>
public sealed class LoraApiConformanceTests : IDisposable
{
    private readonly TempDirectory _dir = new("me-lora");

    public void Dispose() => _dir.Dispose();

    private static Task<MockEngineHost> Engine(params string[] extra) =>
        MockEngineHost.StartAsync(["--model", TestAdapters.TinyModel, "--enable-lora", "--max-loras", "2", "--mock-profile", "tiny", .. extra]);

    private static string Load(string name, string path, bool inplace = false) =>
        Http.Json(new { lora_name = name, lora_path = path, load_inplace = inplace });

    [Fact]
    public async Task Load_success_is_plain_text_and_lists_a_lora_card()
    {
        await using var engine = await Engine();
        using var http = Http.Client(engine.BaseUrl);
        var path = TestAdapters.Write(_dir.Path, "sql", rank: 8);

        using var response = await http.PostJson("v1/load_lora_adapter", Load("sql", path));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/plain", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("Success: LoRA adapter 'sql' added successfully.", await response.Content.ReadAsStringAsync());

        using var models = JsonDocument.Parse(await http.GetStringAsync("v1/models"));
        var data = models.RootElement.GetProperty("data");
        Assert.Equal(2, data.GetArrayLength());
        var card = data.EnumerateArray().Single(c => c.GetProperty("id").GetString() == "sql");
        Assert.Equal("model", card.GetProperty("object").GetString());
        Assert.Equal("vllm", card.GetProperty("owned_by").GetString());
        Assert.Equal(path, card.GetProperty("root").GetString());
        Assert.Equal(TestAdapters.TinyModel, card.GetProperty("parent").GetString());
        Assert.Equal(JsonValueKind.Null, card.GetProperty("max_model_len").ValueKind);
        Assert.Equal(JsonValueKind.Array, card.GetProperty("permission").ValueKind);
    }

    [Theory]
    [InlineData("""{"lora_path":"/x"}""")]
    [InlineData("""{"lora_name":"a"}""")]
    [InlineData("""{"lora_name":5,"lora_path":"/x"}""")]
    public async Task Missing_or_mistyped_field_is_400_bad_request(string body)
    {
        await using var engine = await Engine();
        using var http = Http.Client(engine.BaseUrl);
        var r = await http.Send("v1/load_lora_adapter", body);
        Assert.Equal(400, r.Status);
        Assert.Equal("Bad Request", r.Body.GetProperty("error").GetProperty("type").GetString());
        Assert.Contains("lora_", r.Body.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Non_json_content_type_is_400()
    {
        await using var engine = await Engine();
        using var http = Http.Client(engine.BaseUrl);
        using var response = await http.PostAsync("v1/load_lora_adapter", new StringContent(Load("a", "/x"), Encoding.UTF8, "text/plain"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
    }

    [Theory]
    [InlineData("", "/x")]
    [InlineData("a", "")]
    public async Task Empty_name_or_path_is_invalid_user_input(string name, string path)
    {
        await using var engine = await Engine();
        using var http = Http.Client(engine.BaseUrl);
        (await http.Send("v1/load_lora_adapter", Load(name, path)))
            .AssertError(400, "InvalidUserInput", "Both 'lora_name' and 'lora_path' must be provided.");
    }

    [Fact]
    public async Task Second_load_needs_load_inplace_which_replaces_the_path()
    {
        await using var engine = await Engine();
        using var http = Http.Client(engine.BaseUrl);
        var first = TestAdapters.Write(_dir.Path, "a1", rank: 8);
        var second = TestAdapters.Write(_dir.Path, "a2", rank: 16);
        Assert.Equal(200, (await http.Send("v1/load_lora_adapter", Load("a", first))).Status);
        (await http.Send("v1/load_lora_adapter", Load("a", second))).AssertError(400, "InvalidUserInput",
            "The lora adapter 'a' has already been loaded. If you want to load the adapter in place, set 'load_inplace' to True.");
        Assert.Equal(200, (await http.Send("v1/load_lora_adapter", Load("a", second, inplace: true))).Status);
        using var models = JsonDocument.Parse(await http.GetStringAsync("v1/models"));
        Assert.Equal(second, models.RootElement.GetProperty("data").EnumerateArray().Single(c => c.GetProperty("id").GetString() == "a").GetProperty("root").GetString());
    }

    [Fact]
    public async Task Path_without_adapter_is_404_not_found()
    {
        await using var engine = await Engine();
        using var http = Http.Client(engine.BaseUrl);
        var missing = _dir.Combine("nothing-here");
        (await http.Send("v1/load_lora_adapter", Load("ghost", missing))).AssertError(404, "NotFoundError",
            $"Call to add_lora method failed: Loading lora ghost failed: No adapter found for {missing}");
        using var models = JsonDocument.Parse(await http.GetStringAsync("v1/models"));
        Assert.Equal(1, models.RootElement.GetProperty("data").GetArrayLength());
    }

    [Fact]
    public async Task Rank_above_max_lora_rank_is_400_bad_request_error_and_not_registered()
    {
        await using var engine = await Engine();
        using var http = Http.Client(engine.BaseUrl);
        var path = TestAdapters.Write(_dir.Path, "big", rank: 64);
        (await http.Send("v1/load_lora_adapter", Load("big", path))).AssertError(400, "BadRequestError",
            "Call to add_lora method failed: LoRA rank 64 is greater than max_lora_rank 16.");
        (await http.Send("v1/completions", """{"model":"big","prompt":"x","max_tokens":1}"""))
            .AssertError(404, "NotFoundError", "The model `big` does not exist.");
    }

    [Fact]
    public async Task Newer_builds_answer_500_internal_server_error_when_configured()
    {
        await using var engine = await Engine("--mock-load-error-status", "500");
        using var http = Http.Client(engine.BaseUrl);
        var path = TestAdapters.Write(_dir.Path, "big", rank: 32);
        (await http.Send("v1/load_lora_adapter", Load("big", path))).AssertError(500, "InternalServerError",
            "Call to add_lora method failed: LoRA rank 32 is greater than max_lora_rank 16.");
    }

    [Fact]
    public async Task Load_without_enable_lora_says_so()
    {
        await using var engine = await MockEngineHost.StartAsync("--model", TestAdapters.TinyModel, "--mock-profile", "tiny");
        using var http = Http.Client(engine.BaseUrl);
        var path = TestAdapters.Write(_dir.Path, "a", rank: 8);
        var r = await http.Send("v1/load_lora_adapter", Load("a", path));
        Assert.Equal(400, r.Status);
        Assert.Equal("LoRA is not enabled. Use --enable-lora to enable LoRA.", r.Body.GetProperty("error").GetProperty("message").GetString());
    }

    [Fact]
    public async Task Unload_rows()
    {
        await using var engine = await Engine();
        using var http = Http.Client(engine.BaseUrl);
        (await http.Send("v1/unload_lora_adapter", """{"lora_name":""}"""))
            .AssertError(400, "InvalidUserInput", "'lora_name' needs to be provided to unload a LoRA adapter.");
        (await http.Send("v1/unload_lora_adapter", """{"lora_name":"nope","lora_int_id":3}"""))
            .AssertError(404, "NotFoundError", "The lora adapter 'nope' cannot be found.");

        var path = TestAdapters.Write(_dir.Path, "a", rank: 8);
        Assert.Equal(200, (await http.Send("v1/load_lora_adapter", Load("a", path))).Status);
        var ok = await http.Send("v1/unload_lora_adapter", """{"lora_name":"a"}""");
        Assert.Equal(200, ok.Status);
        Assert.Equal("Success: LoRA adapter 'a' removed successfully.", ok.Text);
        (await http.Send("v1/chat/completions", """{"model":"a","messages":[{"role":"user","content":"hi"}]}"""))
            .AssertError(404, "NotFoundError", "The model `a` does not exist.");
    }

    [Fact]
    public async Task Routes_are_absent_without_runtime_updating()
    {
        await using var engine = await MockEngineHost.StartAsync(new MockEngineHostOptions { AllowRuntimeLoraUpdating = false },
            "--model", TestAdapters.TinyModel, "--enable-lora");
        using var http = Http.Client(engine.BaseUrl);
        foreach (var route in new[] { "v1/load_lora_adapter", "v1/unload_lora_adapter" })
        {
            var r = await http.Send(route, Load("a", "/x"));
            Assert.Equal(404, r.Status);
            Assert.Equal("""{"detail":"Not Found"}""", r.Text);
        }
    }

    [Fact]
    public async Task Adapter_with_wrong_shapes_for_the_base_model_is_rejected()
    {
        // Written for Llama-3.1-8B (hidden 4096), loaded into an engine serving test/tiny (hidden 64).
        await using var engine = await Engine("--max-lora-rank", "8");
        using var http = Http.Client(engine.BaseUrl);
        var dir = _dir.Combine("llama");
        Contracts.Peft.PeftAdapterWriter.Write(dir, new Contracts.Peft.BaseModelShape("fake", 1,
            new Dictionary<string, (int, int)> { ["q_proj"] = (4096, 4096) }), 1, ["q_proj"]);
        var r = await http.Send("v1/load_lora_adapter", Load("wrong", dir));
        Assert.Equal(400, r.Status);
        Assert.StartsWith("Call to add_lora method failed: LoRA weight 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight' has shape [1, 4096]",
            r.Body.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Adapter_targeting_a_module_the_base_lacks_is_rejected()
    {
        await using var engine = await Engine();
        using var http = Http.Client(engine.BaseUrl);
        var dir = _dir.Combine("odd");
        Contracts.Peft.PeftAdapterWriter.Write(dir, new Contracts.Peft.BaseModelShape("fake", 1,
            new Dictionary<string, (int, int)> { ["qkv_proj"] = (64, 96) }), 8, ["qkv_proj"]);
        var r = await http.Send("v1/load_lora_adapter", Load("odd", dir));
        Assert.Equal(400, r.Status);
        Assert.Contains("expected target modules in", r.Body.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Concurrent_loads_of_one_name_register_it_once()
    {
        await using var engine = await Engine();
        using var http = Http.Client(engine.BaseUrl);
        var path = TestAdapters.Write(_dir.Path, "race", rank: 8);
        var results = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => http.Send("v1/load_lora_adapter", Load("race", path))));
        Assert.Equal(1, results.Count(r => r.Status == 200));
        Assert.All(results.Where(r => r.Status != 200), r => Assert.Equal(400, r.Status));
    }

    [Fact]
    public async Task Lora_modules_load_at_start_in_both_forms()
    {
        var a = TestAdapters.Write(_dir.Path, "a", rank: 8);
        var b = TestAdapters.Write(_dir.Path, "b", rank: 8);
        await using var engine = await Engine("--served-model-name", "tiny", "tiny-alias", "--lora-modules", $"a={a}",
            Http.Json(new { name = "b", path = b, base_model_name = "tiny-alias" }));
        using var http = Http.Client(engine.BaseUrl);
        using var models = JsonDocument.Parse(await http.GetStringAsync("v1/models"));
        var cards = models.RootElement.GetProperty("data").EnumerateArray().ToDictionary(c => c.GetProperty("id").GetString()!);
        Assert.Equal(["tiny", "tiny-alias", "a", "b"], cards.Keys);
        Assert.Equal(TestAdapters.TinyModel, cards["tiny"].GetProperty("root").GetString());
        Assert.Equal(2048, cards["tiny"].GetProperty("max_model_len").GetInt32());
        Assert.Equal("tiny", cards["a"].GetProperty("parent").GetString());
        Assert.Equal("tiny-alias", cards["b"].GetProperty("parent").GetString());
    }

    [Fact]
    public async Task A_bad_lora_module_aborts_start_up()
    {
        var e = await Assert.ThrowsAsync<MockEngineStartupException>(() => Engine("--lora-modules", $"a={_dir.Combine("missing")}"));
        Assert.Contains("No adapter found for", e.Message, StringComparison.Ordinal);
    }
}

/// <summary>The real base model's shapes: the samples the AppHost generates must load, tiny ones must not.</summary>
public sealed class Llama8BAdapterTests : IDisposable
{
    private const string Llama = "meta-llama/Llama-3.1-8B-Instruct";
    private readonly TempDirectory _dir = new("me-llama");

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task Adapters_shaped_for_the_base_model_load_and_tiny_ones_are_rejected()
    {
        await using var engine = await MockEngineHost.StartAsync("--model", Llama, "--enable-lora", "--max-loras", "4", "--mock-zero-latency");
        using var http = Http.Client(engine.BaseUrl);
        var good = TestAdapters.Write(_dir.Path, "good", rank: 8, baseModel: Llama);
        var tiny = TestAdapters.Write(_dir.Path, "tiny", rank: 8);

        var ok = await http.Send("v1/load_lora_adapter", Http.Json(new { lora_name = "good", lora_path = good }));
        Assert.Equal(200, ok.Status);
        var bad = await http.Send("v1/load_lora_adapter", Http.Json(new { lora_name = "tiny", lora_path = tiny }));
        Assert.Equal(400, bad.Status);
        Assert.Contains("needs [8, 4096]", bad.Body.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);

        var chat = await http.Send("v1/chat/completions", """{"model":"good","messages":[{"role":"user","content":"hi"}],"max_tokens":3}""");
        Assert.Equal(200, chat.Status);
        Assert.Equal("good", chat.Body.GetProperty("model").GetString());
    }
}
