using System.Text.RegularExpressions;
using HybridServing.MockEngine.Serving;
using Microsoft.ML.Tokenizers;

namespace HybridServing.MockEngine.Onnx;

/// <summary>
/// Maps the real tokenizer (cl100k, the one the engine counts with) onto the tiny model's 512 ids,
/// deterministically: ids 0..3 are the specials (begin of text, end of turn = EOS, header start and
/// end), ids 4..511 are the first 508 cl100k tokens that are a space and 2..12 lowercase letters, so
/// every generated id decodes to a real cl100k token (a word). Any other cl100k id folds onto the
/// text ids by its value modulo 508.
/// </summary>
internal sealed partial class TinyVocabulary
{
    public const int BeginOfText = 0;
    public const int EndOfTurn = 1;
    public const int HeaderStart = 2;
    public const int HeaderEnd = 3;
    public const int FirstText = 4;
    public const int TextTokens = TinyModel.Vocab - FirstText;

    private readonly Tokenizer _tokenizer;
    private readonly int[] _cl100kOf = new int[TextTokens];
    private readonly string[] _text = new string[TextTokens];
    private readonly Dictionary<int, int> _modelOf = [];

    public TinyVocabulary() : this(TokenCounter.Tokenizer) { }

    public TinyVocabulary(Tokenizer tokenizer)
    {
        _tokenizer = tokenizer;
        var found = 0;
        for (var id = 0; found < TextTokens; id++)
        {
            if (id > 200_000) throw new InvalidOperationException("The tokenizer has too few word tokens for the tiny vocabulary.");
            var text = tokenizer.Decode([id]);
            if (text is null || !Word().IsMatch(text)) continue;
            _cl100kOf[found] = id;
            _text[found] = text;
            _modelOf[id] = FirstText + found;
            found++;
        }
    }

    /// <summary>The model id of a cl100k id.</summary>
    public int FromTokenizer(int id) => _modelOf.TryGetValue(id, out var m) ? m : FirstText + (int)((uint)id % TextTokens);

    /// <summary>The cl100k id a model text id stands for; specials have none.</summary>
    public int? ToTokenizer(int modelId) => modelId >= FirstText ? _cl100kOf[modelId - FirstText] : null;

    /// <summary>What a generated id shows as: its word, or nothing for a special (vLLM skips special tokens).</summary>
    public string Text(int modelId) => modelId >= FirstText && modelId < TinyModel.Vocab ? _text[modelId - FirstText] : "";

    public void Encode(string text, List<int> into)
    {
        if (text.Length == 0) return;
        foreach (var id in _tokenizer.EncodeToIds(text)) into.Add(FromTokenizer(id));
    }

    /// <summary>A completion prompt: begin-of-text then the text's tokens.</summary>
    public List<int> Prompt(string text)
    {
        var ids = new List<int> { BeginOfText };
        Encode(text, ids);
        return ids;
    }

    /// <summary>Token ids given by the client (cl100k ids), mapped; no begin-of-text is added, as vLLM adds none.</summary>
    public List<int> Prompt(IEnumerable<long> tokenizerIds) =>
        [.. tokenizerIds.Select(id => FromTokenizer(unchecked((int)id)))];

    /// <summary>A Llama-3-style chat: per message a header around the role, "\n\n", the content, end of turn; then the assistant header.</summary>
    public List<int> Chat(IReadOnlyList<(string Role, string Content)> messages)
    {
        var ids = new List<int> { BeginOfText };
        foreach (var (role, content) in messages)
        {
            Header(role, ids);
            Encode(content, ids);
            ids.Add(EndOfTurn);
        }
        Header("assistant", ids);
        return ids;
    }

    private void Header(string role, List<int> ids)
    {
        ids.Add(HeaderStart);
        Encode(role, ids);
        ids.Add(HeaderEnd);
        Encode("\n\n", ids);
    }

    [GeneratedRegex("^ [a-z]{2,12}$")]
    private static partial Regex Word();
}
