using System.Text.Json;
using HybridServing.Gateway.Forwarding;
using HybridServing.TestKit;
using Xunit.Abstractions;

namespace HybridServing.Gateway.Tests.Fuzz;

/// <summary>
/// Mutational fuzzing of the gateway's request parsing (<see cref="ModelField"/>) from the seed corpus in
/// <c>Fuzz/corpus/request-body</c>. Properties: it never throws; what it accepts is one JSON object (System.Text.Json's
/// DOM agrees) whose top-level <c>model</c> is the model it returned, at the byte range it returned.
/// </summary>
public sealed class RequestBodyFuzzTests(ITestOutputHelper output)
{
    [Fact]
    public void Request_bodies_never_crash_the_parser_and_what_it_accepts_is_what_the_engine_would_read()
    {
        var report = Fuzzer.Run("gateway request body", Fuzzer.Corpus("Gateway.Tests", "request-body"), 40_000, body =>
        {
            foreach (var field in new[] { ModelField.Read(body, "messages"), ModelField.Read(body, "prompt", "prompt_embeds"), ModelField.Read(body) })
            {
                if (!field.IsValid)
                {
                    if (string.IsNullOrEmpty(field.Error)) throw new InvalidOperationException("rejected without a message");
                    continue;
                }
                using var doc = JsonDocument.Parse(body, new JsonDocumentOptions { MaxDepth = 64 });
                if (doc.RootElement.GetProperty("model").GetString() != field.Model) throw new InvalidOperationException("the DOM reads another model");
                var token = body.AsSpan(field.ModelTokenStart, field.ModelTokenLength);
                if (JsonSerializer.Deserialize<string>(token) != field.Model) throw new InvalidOperationException("the model token range is wrong");
                if (string.IsNullOrWhiteSpace(field.Model) || field.Model.Length > ModelField.MaxModelLength) throw new InvalidOperationException("accepted a model it should refuse");
            }
        });
        output.WriteLine(report.ToString());
        if (report.Problems() is { } problems) Assert.Fail(problems);
    }
}
